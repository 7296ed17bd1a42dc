/**
 * Lamport clock of one app: every journal row takes the next tick; a call that arrives carrying the
 * caller's clock (`x-lamport`) moves ours past it, so causally later rows always have larger logical time.
 */
export class LamportClock {
  private now = 0;
  private readonly listeners: Array<() => void> = [];

  constructor(start = 0) {
    this.now = start;
  }

  tick(): number {
    this.now += 1;
    if (this.listeners.length) this.advanced();
    return this.now;
  }

  observe(remote: number): void {
    if (Number.isSafeInteger(remote) && remote > this.now) {
      this.now = remote;
      if (this.listeners.length) this.advanced();
    }
  }

  /** Called after every move of the clock (the logical timers of deterministic mode watch it). */
  onAdvance(fn: () => void): void {
    this.listeners.push(fn);
  }

  private advanced(): void {
    for (const fn of this.listeners) fn();
  }

  peek(): number {
    return this.now;
  }
}
