// How the guest app paces its driver's completion polls over REST. Reading the record is a load from the mapped
// RAM (no call), so nothing spaces the polls any more: spinning through COMPLETION_MAX_POLLS back to back would
// give up after a few milliseconds, while a descriptor waiting on a page request may take PRQ_TIMEOUT_MS. Like a
// driver that spins, then sleeps between looks (or UMWAITs with a deadline), the first polls come back to back and
// the rest `intervalMs` apart. The bound stays a count (docs/replay.md): only how long it lasts is paced.
import type { Timers } from '@app/shared/timers';

export const POLL_SPIN = 100;
export const POLL_INTERVAL_MS = 1;

export function pollPacing(timers: Timers, spin = POLL_SPIN, intervalMs = POLL_INTERVAL_MS): (n: number) => Promise<void> {
  return (n) => new Promise((resolve) => (n <= spin ? setImmediate(resolve) : timers.after(intervalMs, resolve)));
}
