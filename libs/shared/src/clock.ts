/**
 * How far one message may advance a Lamport clock (LAMPORT_MAX_STEP): a peer that is ahead by more has
 * journaled more rows than any run of this lab writes, so the excess is a broken or hostile peer, not
 * causality. 2^32 steps per message; 2^53 is 2^21 such messages away.
 */
export const LAMPORT_MAX_STEP = 2 ** 32;

/**
 * Lamport clock of one app: every journal row takes the next tick; a call that arrives carrying the caller's
 * clock (`x-lamport`, only from a proven peer of this stack: nest/trace.middleware.ts) moves ours past it, so
 * causally later rows always have larger logical time. It never leaves the safe integers (a clock at the top
 * stays there: rows still order by seq within an app). Listeners hear every move (the logical timers of
 * deterministic mode watch it).
 */
export class LamportClock {
  private now = 0;
  private readonly listeners: Array<() => void> = [];

  constructor(
    start = 0,
    readonly maxStep = LAMPORT_MAX_STEP,
  ) {
    this.now = Math.min(start, Number.MAX_SAFE_INTEGER);
  }

  tick(): number {
    if (this.now < Number.MAX_SAFE_INTEGER) this.now += 1;
    if (this.listeners.length) this.advanced();
    return this.now;
  }

  /** A peer's clock: ours moves past it, by at most `maxStep`; anything but a safe non-negative integer is ignored. */
  observe(remote: number): void {
    if (!Number.isSafeInteger(remote) || remote <= this.now) return;
    this.now = Math.min(remote, this.now + this.maxStep, Number.MAX_SAFE_INTEGER);
    if (this.listeners.length) this.advanced();
  }

  /** The highest logical time of our own journal (restart), or a floor we are told to start from: trusted, unbounded, clamped to the safe integers. */
  restore(persisted: number): void {
    if (!Number.isFinite(persisted) || persisted <= this.now) return;
    this.now = Math.min(Math.floor(persisted), Number.MAX_SAFE_INTEGER);
    if (this.listeners.length) this.advanced();
  }

  /** Called after every move of the clock. */
  onAdvance(fn: () => void): void {
    this.listeners.push(fn);
  }

  peek(): number {
    return this.now;
  }

  private advanced(): void {
    for (const fn of this.listeners) fn();
  }
}
