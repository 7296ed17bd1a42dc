// Where an app's waits come from (a page-request timeout, a retry back-off): real timers normally, and in
// deterministic mode (DESIGN §9, SEED) timers driven by the run's logical clock, so a replay times out at the
// same point of the run. Domain code takes a Timers, never calls setTimeout itself.
import { AsyncResource } from 'node:async_hooks';
export interface TimerHandle {
  cancel(): void;
}

export interface Timers {
  /** Runs `fn` once, `ms` from now (in this app's time base). */
  after(ms: number, fn: () => void): TimerHandle;
}

/** Wall-clock timers (the default); they never keep the process alive on their own. */
export const realTimers: Timers = {
  after(ms, fn) {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return { cancel: () => clearTimeout(t) };
  },
};

/**
 * The timers of deterministic mode: time is the app's Lamport clock, one tick = one logical millisecond. The
 * clock moves by one for every journal row the app writes, jumps to a peer's clock when a call or answer
 * carries a later one (`x-lamport`), and jumps when the operator advances it (a scenario's `advance` step: a
 * request carrying a later `x-lamport`, itself recorded as an input). A timer armed at clock c for `ms` fires
 * once the clock reaches c + ms, in a macrotask right after the move that reached it (never inside a journal
 * commit), earliest deadline first, ties in the order they were armed. Wall time plays no part, so a replay
 * fires each timer after the same row as the recording did. Like a setTimeout callback, each runs in the async
 * context it was armed in (its trace), not in that of the call whose clock move made it due: the work a timer
 * does is journaled under the trace that armed it.
 */
export class LogicalTimers implements Timers {
  private armed: Array<{ at: number; order: number; fn: () => void }> = [];
  private order = 0;
  private scheduled = false;

  constructor(
    private readonly clock: { peek(): number; onAdvance(fn: () => void): void },
    private readonly defer: (fn: () => void) => void = (fn) => void setImmediate(fn),
  ) {
    clock.onAdvance(() => this.check());
  }

  after(ms: number, fn: () => void): TimerHandle {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`timer of ${ms} ms`);
    const timer = { at: this.clock.peek() + Math.ceil(ms), order: this.order++, fn: AsyncResource.bind(fn) };
    this.armed.push(timer);
    this.armed.sort((a, b) => a.at - b.at || a.order - b.order);
    this.check();
    return { cancel: () => void (this.armed = this.armed.filter((t) => t !== timer)) };
  }

  /** Timers still armed (tests, quiesce). */
  get pending(): number {
    return this.armed.length;
  }

  private check(): void {
    if (this.scheduled || this.armed.length === 0 || this.armed[0].at > this.clock.peek()) return;
    this.scheduled = true;
    this.defer(() => {
      this.scheduled = false;
      while (this.armed.length > 0 && this.armed[0].at <= this.clock.peek()) (this.armed.shift() as { fn: () => void }).fn();
    });
  }
}

/** The timers an app runs on: logical in deterministic mode (SEED), wall-clock otherwise. */
export function timersFor(seed: number | null, clock: { peek(): number; onAdvance(fn: () => void): void }): Timers {
  return seed === null ? realTimers : new LogicalTimers(clock);
}
