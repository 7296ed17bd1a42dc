import { IdAllocator } from './id-allocator';
import { PASID_LIMIT } from '@app/shared/vtd/vtd.constants';
import { PASID_POOL_SIZE } from '../ioasid/ioasid.constants';

describe('IdAllocator', () => {
  it('hands out the lowest free id and reuses freed ids lowest-first', () => {
    const a = new IdAllocator(100);
    const got = Array.from({ length: 10 }, () => a.alloc());
    expect(got).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    a.release(7);
    a.release(3);
    expect(a.alloc()).toBe(3);
    expect(a.alloc()).toBe(7);
    expect(a.alloc()).toBe(10);
    expect(a.used).toBe(11);
  });

  it('respects a capacity that is not a multiple of 32 and reports exhaustion', () => {
    const a = new IdAllocator(33);
    for (let i = 0; i < 33; i++) expect(a.alloc()).toBe(i);
    expect(a.alloc()).toBeNull();
    a.release(32);
    expect(a.alloc()).toBe(32);
    expect(a.free).toBe(0);
  });

  it('reserve takes a specific id, and double reserve/release are refused', () => {
    const a = new IdAllocator(64);
    a.reserve(0);
    a.reserve(5);
    expect(() => a.reserve(5)).toThrow(RangeError);
    expect(() => a.release(6)).toThrow(RangeError);
    expect(() => a.isUsed(64)).toThrow(RangeError);
    expect([a.alloc(), a.alloc(), a.alloc(), a.alloc(), a.alloc()]).toEqual([1, 2, 3, 4, 6]);
  });

  it('agrees with a naive model on a pseudo-random workload across word and summary boundaries', () => {
    const cap = 32 * 32 * 3 + 17;
    const a = new IdAllocator(cap);
    const used = new Set<number>();
    let seed = 12345;
    const rnd = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
    for (let i = 0; i < 20000; i++) {
      if (used.size > 0 && rnd() % 3 === 0) {
        const victims = [...used];
        const id = victims[rnd() % victims.length];
        a.release(id);
        used.delete(id);
      } else {
        let expected: number | null = 0;
        while (expected !== null && used.has(expected)) expected = expected + 1 < cap ? expected + 1 : null;
        const got = a.alloc();
        expect(got).toBe(expected);
        if (got !== null) used.add(got);
      }
    }
    expect(a.used).toBe(used.size);
  });

  it('PASID space at full scale: all 2^20 - 1 ids, then exhaustion, then exactly a freed middle id back', () => {
    const pool = new IdAllocator(PASID_LIMIT);
    pool.reserve(0); // PASID 0 = no PASID
    let last = 0;
    for (let i = 0; i < PASID_POOL_SIZE; i++) {
      const id = pool.alloc();
      if (id !== last + 1) throw new Error(`expected ${last + 1}, got ${id}`);
      last = id;
    }
    expect(last).toBe(PASID_LIMIT - 1);
    expect(pool.free).toBe(0);
    expect(pool.alloc()).toBeNull();
    const middle = 524_287;
    pool.release(middle);
    expect(pool.free).toBe(1);
    expect(pool.alloc()).toBe(middle);
    expect(pool.alloc()).toBeNull();
    pool.release(PASID_LIMIT - 1);
    pool.release(1);
    expect(pool.alloc()).toBe(1);
    expect(pool.alloc()).toBe(PASID_LIMIT - 1);
  });
});
