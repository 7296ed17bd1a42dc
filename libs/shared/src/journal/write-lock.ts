/** A FIFO async mutex: the per-process write lock around transactions (TypeORM shares one connection). */
export class WriteLock {
  private tail: Promise<void> = Promise.resolve();
  /** Holders and waiters: 0 means a synchronous writer may go ahead without queueing. */
  private users = 0;

  get idle(): boolean {
    return this.users === 0;
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    const previous = this.tail;
    let release!: () => void;
    this.tail = new Promise<void>((resolve) => (release = resolve));
    this.users++;
    await previous;
    try {
      return await fn();
    } finally {
      this.users--;
      release();
    }
  }
}
