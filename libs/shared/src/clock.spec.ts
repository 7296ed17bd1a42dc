import { LamportClock, LAMPORT_MAX_STEP } from './clock';

describe('the Lamport clock', () => {
  it('moves past a remote clock, but one message advances it by at most its step bound', () => {
    const clock = new LamportClock(0, 1000);
    clock.observe(600);
    expect(clock.peek()).toBe(600);
    clock.observe(Number.MAX_SAFE_INTEGER);
    expect(clock.peek()).toBe(1600);
    clock.observe(10);
    expect(clock.peek()).toBe(1600);
    for (const junk of [Number.NaN, -5, 1.5, Number.POSITIVE_INFINITY, 2 ** 60]) clock.observe(junk);
    expect(clock.peek()).toBe(1600);
    expect(new LamportClock().maxStep).toBe(LAMPORT_MAX_STEP);
  });

  it('restores what its own journal holds without the bound, and never leaves the safe integers', () => {
    const clock = new LamportClock(0, 10);
    clock.restore(5_000_000);
    expect(clock.peek()).toBe(5_000_000);
    // A journal written while the clock could be pinned holds 2^53: keep going from the top, not from 1.
    const pinned = new LamportClock();
    pinned.restore(2 ** 53);
    expect(pinned.tick()).toBe(Number.MAX_SAFE_INTEGER);
    expect(pinned.tick()).toBe(Number.MAX_SAFE_INTEGER);
  });
});
