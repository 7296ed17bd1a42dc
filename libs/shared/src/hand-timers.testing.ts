// Test support (not used by production code): a Timers whose waits fire only when the test says so, in the order
// they were set, so a test drives a timeout or a back-off exactly where it wants it (DESIGN §9: waits are a seam).
import type { TimerHandle, Timers } from './timers';

export class HandTimers implements Timers {
  private readonly waiting: Array<{ ms: number; fn: () => void }> = [];

  after(ms: number, fn: () => void): TimerHandle {
    const t = { ms, fn };
    this.waiting.push(t);
    return {
      cancel: () => {
        const i = this.waiting.indexOf(t);
        if (i >= 0) this.waiting.splice(i, 1);
      },
    };
  }

  /** The delays of the waits not fired or cancelled yet, oldest first. */
  get pending(): number[] {
    return this.waiting.map((t) => t.ms);
  }

  /**
   * Fires every wait set so far (not those their callbacks set), oldest first, or only those of `ms`. Returns how
   * many fired.
   */
  fire(ms?: number): number {
    const due = this.waiting.filter((t) => ms === undefined || t.ms === ms);
    for (const t of due) this.waiting.splice(this.waiting.indexOf(t), 1);
    for (const t of due) t.fn();
    return due.length;
  }
}
