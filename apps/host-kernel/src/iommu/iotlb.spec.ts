import { KernelError } from '@app/shared/errno';
import { Iotlb } from './iotlb';

const entry = (hpaPage: number, write = true, user = true) => ({ hpaPage, read: true, write, user });

describe('Iotlb', () => {
  it('hits on the same (table, page), misses elsewhere, and counts', () => {
    const tlb = new Iotlb(8);
    tlb.insert(1, 0x1234, entry(0x9000));
    expect(tlb.lookup(1, 0x1fff)).toEqual(entry(0x9000));
    expect(tlb.lookup(1, 0x2000)).toBeNull();
    expect(tlb.lookup(2, 0x1000)).toBeNull();
    expect(tlb.stats).toMatchObject({ hits: 1, misses: 2, entries: 1 });
  });

  it('a supervisor page (U/S = 0) serves privileged requests only; a user request misses and re-walks', () => {
    const tlb = new Iotlb(8);
    tlb.insert(1, 0, entry(0x9000, true, false));
    expect(tlb.lookup(1, 0, { write: false, privileged: true })).toEqual(entry(0x9000, true, false));
    expect(tlb.lookup(1, 0, { write: true })).toBeNull();
    expect(tlb.lookup(1, 0, { write: false, privileged: false })).toBeNull();
    expect(tlb.stats).toMatchObject({ hits: 1, misses: 2, entries: 1 });
  });

  it('treats a hit without the needed permission as a miss', () => {
    const tlb = new Iotlb(8);
    tlb.insert(1, 0, entry(0x9000, false));
    expect(tlb.lookup(1, 0, { write: true })).toBeNull();
    expect(tlb.lookup(1, 0, { write: false })).not.toBeNull();
  });

  it('invalidates everything, one table, or a page range', () => {
    const tlb = new Iotlb(64);
    for (let p = 0; p < 4; p++) {
      tlb.insert(1, p * 4096, entry(0x10000 + p * 4096));
      tlb.insert(2, p * 4096, entry(0x20000 + p * 4096));
    }
    expect(tlb.invalidate(1, 4096 + 100, 4096)).toBe(2); // pages 1 and 2
    expect(tlb.lookup(1, 4096)).toBeNull();
    expect(tlb.lookup(1, 0)).not.toBeNull();
    expect(tlb.lookup(1, 3 * 4096)).not.toBeNull();
    expect(tlb.invalidate(2)).toBe(4);
    expect(tlb.lookup(2, 0)).toBeNull();
    expect(tlb.lookup(1, 0)).not.toBeNull();
    expect(tlb.invalidate()).toBe(2);
    expect(tlb.stats.entries).toBe(0);
  });

  it('evicts the least recently used entry when full', () => {
    const tlb = new Iotlb(2);
    tlb.insert(1, 0, entry(0x1000));
    tlb.insert(1, 4096, entry(0x2000));
    tlb.lookup(1, 0); // page 0 becomes most recent
    tlb.insert(1, 8192, entry(0x3000));
    expect(tlb.lookup(1, 4096)).toBeNull();
    expect(tlb.lookup(1, 0)).not.toBeNull();
    expect(tlb.stats).toMatchObject({ evictions: 1, entries: 2 });
  });

  it('rejects a bad range or entry with EINVAL and keeps its contents', () => {
    const tlb = new Iotlb(4);
    tlb.insert(1, 0, entry(0x1000));
    for (const fn of [() => tlb.invalidate(1, 0, 0), () => tlb.invalidate(1, -1, 10), () => tlb.insert(1, 0, entry(0x1001)), () => new Iotlb(0)]) {
      expect(fn).toThrow(KernelError);
    }
    expect(tlb.lookup(1, 0)).toEqual(entry(0x1000));
  });

  it('hit(): the numeric hot path returns the cached frame, -1 on a miss or a missing permission, and counts as lookup()', () => {
    const tlb = new Iotlb(8);
    tlb.insert(3, 0x5000, entry(0x9000, false, false));
    expect(tlb.hit(3, 0x5abc, false, true)).toBe(0x9000);
    expect(tlb.hit(3, 0x5abc, true, true)).toBe(-1); // read-only entry, write request
    expect(tlb.hit(3, 0x5abc, false, false)).toBe(-1); // supervisor page, user request
    expect(tlb.hit(4, 0x5abc, false, true)).toBe(-1); // another table
    expect(tlb.stats).toMatchObject({ hits: 1, misses: 3, entries: 1 });
  });

  it('a hit keeps every other entry in place: only the hit one becomes most recent, nothing is re-keyed or added', () => {
    const tlb = new Iotlb(8);
    for (let p = 0; p < 4; p++) tlb.insert(1, p * 4096, entry(0x10000 + p * 4096));
    const page = (p: number) => ({ pgtblId: 1, page: p });
    expect(tlb.order()).toEqual([page(3), page(2), page(1), page(0)]);
    expect(tlb.hit(1, 3 * 4096, false, false)).toBe(0x13000); // the head: nothing moves
    expect(tlb.order()).toEqual([page(3), page(2), page(1), page(0)]);
    expect(tlb.hit(1, 4096, false, false)).toBe(0x11000);
    expect(tlb.order()).toEqual([page(1), page(3), page(2), page(0)]);
    expect(tlb.stats).toMatchObject({ entries: 4, evictions: 0 });
    tlb.insert(1, 2 * 4096, entry(0x99000)); // re-insert of a cached page replaces it, it does not grow the IOTLB
    expect(tlb.hit(1, 2 * 4096, false, false)).toBe(0x99000);
    expect(tlb.stats.entries).toBe(4);
  });

  it('invalidation drops the entries and frees their slots: refills up to capacity evict nothing', () => {
    const tlb = new Iotlb(4);
    for (let p = 0; p < 4; p++) tlb.insert(1, p * 4096, entry(0x10000 + p * 4096));
    expect(tlb.invalidate(1, 0, 2 * 4096)).toBe(2);
    expect(tlb.hit(1, 0, false, false)).toBe(-1);
    expect(tlb.hit(1, 4096, false, false)).toBe(-1);
    tlb.insert(2, 0, entry(0x20000));
    tlb.insert(2, 4096, entry(0x21000));
    expect(tlb.stats).toMatchObject({ entries: 4, evictions: 0 });
    expect(tlb.hit(1, 2 * 4096, false, false)).toBe(0x12000);
    expect(tlb.invalidate(2)).toBe(2);
    expect(tlb.order()).toEqual([{ pgtblId: 1, page: 2 }, { pgtblId: 1, page: 3 }]);
    expect(tlb.invalidate()).toBe(2);
    expect(tlb.order()).toEqual([]);
    for (let p = 0; p < 4; p++) tlb.insert(5, p * 4096, entry(0x30000 + p * 4096));
    expect(tlb.stats).toMatchObject({ entries: 4, evictions: 0 });
    expect(tlb.hit(5, 3 * 4096, true, false)).toBe(0x33000);
  });

  it('a wide page-range invalidation over a sparse table drops exactly the cached pages inside it', () => {
    const tlb = new Iotlb(8);
    tlb.insert(1, 0, entry(0x1000));
    tlb.insert(1, 2 ** 30, entry(0x2000));
    tlb.insert(1, 2 ** 40, entry(0x3000));
    expect(tlb.invalidate(1, 4096, 2 ** 40 - 4096)).toBe(1); // [4 KiB, 1 TiB): only the 1 GiB page
    expect(tlb.hit(1, 2 ** 30, false, false)).toBe(-1);
    expect(tlb.hit(1, 0, false, false)).toBe(0x1000);
    expect(tlb.hit(1, 2 ** 40, false, false)).toBe(0x3000);
  });
  it('hit() right after a table goes away (flush, table flush, eviction, last page dropped) misses, and sees it refilled', () => {
    const tlb = new Iotlb(2);
    tlb.insert(1, 0, entry(0x1000));
    expect(tlb.hit(1, 0, false, false)).toBe(0x1000); // table 1 is now the one hit() remembers
    tlb.invalidate(1);
    expect(tlb.hit(1, 0, false, false)).toBe(-1);
    tlb.insert(1, 0, entry(0x2000));
    expect(tlb.hit(1, 0, false, false)).toBe(0x2000);
    tlb.invalidate();
    expect(tlb.hit(1, 0, false, false)).toBe(-1);
    tlb.insert(1, 0, entry(0x3000));
    expect(tlb.hit(1, 0, false, false)).toBe(0x3000);
    tlb.invalidate(1, 0, 4096); // its last page: the table's map goes
    expect(tlb.hit(1, 0, false, false)).toBe(-1);
    tlb.insert(1, 0, entry(0x4000));
    expect(tlb.hit(1, 0, false, false)).toBe(0x4000);
    tlb.insert(2, 0, entry(0x5000));
    tlb.insert(3, 0, entry(0x6000)); // full: evicts table 1's only entry
    expect(tlb.hit(1, 0, false, false)).toBe(-1);
    expect(tlb.hit(2, 0, false, false)).toBe(0x5000);
    expect(tlb.hit(3, 0, false, false)).toBe(0x6000);
    expect(tlb.stats).toMatchObject({ hits: 6, misses: 4, evictions: 1, entries: 2 });
  });

  it('a flushed table leaves nothing behind: the next table that caches finds only its own entries', () => {
    const tlb = new Iotlb(16);
    tlb.insert(1, 0x1000, entry(0x9000));
    tlb.insert(1, 0x2000, entry(0xa000));
    expect(tlb.invalidate(1)).toBe(2);
    tlb.insert(2, 0x3000, entry(0xb000)); // may reuse the slots and the table record table 1 left
    expect(tlb.lookup(2, 0x1000)).toBeNull();
    expect(tlb.lookup(2, 0x2000)).toBeNull();
    expect(tlb.lookup(1, 0x1000)).toBeNull();
    expect(tlb.lookup(2, 0x3000)).toEqual(entry(0xb000));
    expect(tlb.tables()).toEqual([2]);
    // Emptied by its last page going (range flush, eviction) rather than a table flush: the same.
    expect(tlb.invalidate(2, 0x3000, 0x1000)).toBe(1);
    tlb.insert(3, 0x5000, entry(0xc000));
    expect(tlb.lookup(3, 0x3000)).toBeNull();
    expect(tlb.tables()).toEqual([3]);
    expect(tlb.stats.entries).toBe(1);
  });
});
