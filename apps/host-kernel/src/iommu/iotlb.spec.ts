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
});
