/**
 * Lamport clock of one app: every journal row takes the next tick; a call that arrives carrying the
 * caller's clock (`x-lamport`) moves ours past it, so causally later rows always have larger logical time.
 */
export class LamportClock {
  private now = 0;

  constructor(start = 0) {
    this.now = start;
  }

  tick(): number {
    this.now += 1;
    return this.now;
  }

  observe(remote: number): void {
    if (Number.isSafeInteger(remote) && remote > this.now) this.now = remote;
  }

  peek(): number {
    return this.now;
  }
}
