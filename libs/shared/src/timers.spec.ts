import { LamportClock } from './clock';
import { LogicalTimers, realTimers, timersFor } from './timers';
import { currentTrace, runInTrace } from './trace';

describe('logical timers (deterministic mode)', () => {
  const setup = () => {
    const clock = new LamportClock();
    const later: Array<() => void> = [];
    const timers = new LogicalTimers(clock, (fn) => later.push(fn));
    const run = (): void => {
      while (later.length) (later.shift() as () => void)();
    };
    return { clock, timers, run };
  };

  it('fire once the Lamport clock has moved `ms` ticks past arming, never on wall time, earliest first', () => {
    const { clock, timers, run } = setup();
    const fired: string[] = [];
    clock.tick(); // 1
    timers.after(3, () => fired.push('a')); // at 4
    timers.after(2, () => fired.push('b')); // at 3
    clock.tick();
    run();
    expect(fired).toEqual([]);
    clock.tick(); // 3
    run();
    expect(fired).toEqual(['b']);
    clock.observe(10); // a peer's later clock (or the operator's advance) moves time too
    run();
    expect(fired).toEqual(['b', 'a']);
    expect(timers.pending).toBe(0);
  });

  it('a cancelled timer never fires; the callback runs outside the move that made it due', () => {
    const { clock, timers, run } = setup();
    const fired: number[] = [];
    const h = timers.after(1, () => fired.push(1));
    timers.after(1, () => fired.push(2));
    h.cancel();
    clock.tick();
    expect(fired).toEqual([]); // deferred, not inside tick()
    run();
    expect(fired).toEqual([2]);
  });

  it('a timer runs in the trace that armed it, not in that of the call whose clock move made it due', () => {
    const { clock, timers, run } = setup();
    const seen: Array<string | undefined> = [];
    const armer = { traceId: 'a'.repeat(32), spanId: 'b'.repeat(16), caller: null };
    const mover = { traceId: 'c'.repeat(32), spanId: 'd'.repeat(16), caller: null };
    runInTrace(armer, () => timers.after(1, () => seen.push(currentTrace()?.traceId)));
    timers.after(1, () => seen.push(currentTrace()?.traceId)); // armed outside any trace
    runInTrace(mover, () => {
      clock.tick();
      run(); // the deferred run starts inside the mover's trace
    });
    expect(seen).toEqual([armer.traceId, undefined]);
  });

  it('without a seed an app keeps wall-clock timers', () => {
    expect(timersFor(null, new LamportClock())).toBe(realTimers);
    expect(timersFor(3, new LamportClock())).toBeInstanceOf(LogicalTimers);
  });
});
