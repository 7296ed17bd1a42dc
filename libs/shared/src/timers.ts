// Where an app's waits come from (a page-request timeout, a retry back-off): real timers normally, and in
// deterministic mode (DESIGN §9, SEED) timers driven by the run's logical clock, so a replay times out at the
// same point of the run. Domain code takes a Timers, never calls setTimeout itself.
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
