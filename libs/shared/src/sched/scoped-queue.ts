// FIFO queues by key with a barrier: work on one key runs in submission order; work on different keys runs
// concurrently; work on `'all'` (a barrier) starts once everything submitted before it has finished, and everything
// submitted after it starts once it has. This is how the vIOMMU's invalidation queue keeps each vPASID's descriptors
// in order while binds of different vPASIDs overlap, and how the guest OS locks per process, not per VM.
export type Scope<K> = readonly K[] | 'all';

export class ScopedQueue<K> {
  /** The last piece of work queued on each key (settled when it is done, whatever its outcome). */
  private readonly tails = new Map<K, Promise<void>>();
  /** The last barrier: keyed work queued after it waits for it. */
  private barrier: Promise<void> = Promise.resolve();
  private pending = 0;

  /** Runs `fn` after everything queued before it on the keys of `scope` (every key for 'all'). */
  run<T>(scope: Scope<K>, fn: () => Promise<T> | T): Promise<T> {
    const before = scope === 'all' ? [this.barrier, ...this.tails.values()] : [this.barrier, ...scope.flatMap((k) => this.tails.get(k) ?? [])];
    const run = Promise.all(before).then(fn);
    const done = run.then(
      () => undefined,
      () => undefined,
    );
    this.pending++;
    void done.then(() => this.pending--);
    if (scope === 'all') {
      this.barrier = done;
      // Everything before is covered by the barrier: keyed work after it needs only the barrier.
      this.tails.clear();
    } else {
      for (const k of new Set(scope)) {
        this.tails.set(k, done);
        void done.then(() => {
          if (this.tails.get(k) === done) this.tails.delete(k);
        });
      }
    }
    return run;
  }

  /** Work queued or running (tests, metrics). */
  get size(): number {
    return this.pending;
  }
}
