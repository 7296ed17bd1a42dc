import type { Timers } from '@app/shared/timers';
import { POLL_INTERVAL_MS, POLL_SPIN, pollPacing } from './poll-pacing';

/** Timers that fire only when the test says so, recording what was armed. */
function heldTimers(): Timers & { armed: number[]; fire(): void } {
  const due: Array<() => void> = [];
  return {
    armed: [],
    after(ms, fn) {
      this.armed.push(ms);
      due.push(fn);
      return { cancel: () => undefined };
    },
    fire: () => due.splice(0).forEach((fn) => fn()),
  };
}

describe('pollPacing', () => {
  it('the first POLL_SPIN polls come back to back (no timer); later ones wait POLL_INTERVAL_MS on the timers', async () => {
    const timers = heldTimers();
    const pace = pollPacing(timers);
    await pace(1);
    await pace(POLL_SPIN);
    expect(timers.armed).toEqual([]);
    let done = false;
    const later = pace(POLL_SPIN + 1).then(() => (done = true));
    await new Promise((resolve) => setImmediate(resolve));
    expect(done).toBe(false);
    expect(timers.armed).toEqual([POLL_INTERVAL_MS]);
    timers.fire();
    await later;
    expect(done).toBe(true);
  });
});
