import { ScopedQueue } from './scoped-queue';

/** A piece of work that runs until the test lets it finish; `log` says when each one started and ended. */
function gated(log: string[], name: string): { fn: () => Promise<string>; finish: () => void } {
  let finish: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (finish = resolve));
  return {
    fn: async () => {
      log.push(`${name}+`);
      await done;
      log.push(`${name}-`);
      return name;
    },
    finish: () => finish(),
  };
}

const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('ScopedQueue', () => {
  it('work on different keys runs side by side; on one key, in submission order', async () => {
    const q = new ScopedQueue<number>();
    const log: string[] = [];
    const [a1, b1, a2] = [gated(log, 'a1'), gated(log, 'b1'), gated(log, 'a2')];
    const runs = [q.run([1], a1.fn), q.run([2], b1.fn), q.run([1], a2.fn)];
    await flush();
    expect(log).toEqual(['a1+', 'b1+']);
    b1.finish();
    await flush();
    expect(log).toEqual(['a1+', 'b1+', 'b1-']);
    a1.finish();
    await flush();
    expect(log).toEqual(['a1+', 'b1+', 'b1-', 'a1-', 'a2+']);
    a2.finish();
    expect(await Promise.all(runs)).toEqual(['a1', 'b1', 'a2']);
  });

  it('a barrier starts after everything before it, and everything after it starts after it', async () => {
    const q = new ScopedQueue<number>();
    const log: string[] = [];
    const [a, all, b] = [gated(log, 'a'), gated(log, 'all'), gated(log, 'b')];
    const runs = [q.run([1], a.fn), q.run('all', all.fn), q.run([2], b.fn)];
    await flush();
    expect(log).toEqual(['a+']);
    a.finish();
    await flush();
    expect(log).toEqual(['a+', 'a-', 'all+']);
    all.finish();
    await flush();
    expect(log).toEqual(['a+', 'a-', 'all+', 'all-', 'b+']);
    b.finish();
    await Promise.all(runs);
    expect(q.size).toBe(0);
  });

  it('work on several keys waits for each; an empty scope waits only for the last barrier', async () => {
    const q = new ScopedQueue<number>();
    const log: string[] = [];
    const [a, b, ab, none] = [gated(log, 'a'), gated(log, 'b'), gated(log, 'ab'), gated(log, 'none')];
    const runs = [q.run([1], a.fn), q.run([2], b.fn), q.run([1, 2], ab.fn), q.run([], none.fn)];
    await flush();
    expect(log).toEqual(['a+', 'b+', 'none+']);
    a.finish();
    await flush();
    expect(log).not.toContain('ab+');
    b.finish();
    await flush();
    expect(log).toContain('ab+');
    ab.finish();
    none.finish();
    await Promise.all(runs);
  });

  it('a failure rejects its own run only; what follows on the key still runs', async () => {
    const q = new ScopedQueue<number>();
    const failed = q.run([1], async () => {
      throw new Error('boom');
    });
    const next = q.run([1], async () => 'next');
    await expect(failed).rejects.toThrow('boom');
    expect(await next).toBe('next');
  });
});
