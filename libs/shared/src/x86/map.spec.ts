import { KernelError } from '../errno';
import { errnoOf } from '../errno.testing';
import { findLeaf, mapPage, protectPage, unmapPage } from './map';
import { walk4Level } from './walk';
import { TestPageMemory } from './x86-test-memory';

const VA = 0x7f12_3456_7000;


describe('mapPage / unmapPage / protectPage', () => {
  it('maps a page so the walker finds it, allocating three tables', () => {
    const mem = new TestPageMemory();
    const cr3 = mem.allocTable();
    let allocated = 0;
    mapPage(mem, cr3, VA, 0x8000, { writable: true, user: true }, () => (allocated++, mem.allocTable()));
    expect(allocated).toBe(3);
    expect(walk4Level(cr3, VA + 5, { write: true }, mem)).toMatchObject({ ok: true, address: 0x8005 });
    // A neighbour in the same PT reuses every table.
    mapPage(mem, cr3, VA + 4096, 0x9000, { writable: false, user: true }, () => (allocated++, mem.allocTable()));
    expect(allocated).toBe(3);
    expect(walk4Level(cr3, VA + 4096, { write: true }, mem)).toMatchObject({ ok: false, reason: 'write-denied' });
  });

  it('refuses an existing mapping with EEXIST and leaves memory unchanged', () => {
    const mem = new TestPageMemory();
    const cr3 = mem.allocTable();
    mapPage(mem, cr3, VA, 0x8000, { writable: true, user: true }, mem.allocTable);
    const before = mem.snapshot();
    expect(errnoOf(() => mapPage(mem, cr3, VA, 0xa000, { writable: true, user: true }, mem.allocTable))).toBe('EEXIST');
    expect(mem.snapshot()).toEqual(before);
  });

  it('rejects bad va/pa/cr3 with EINVAL and leaves memory unchanged', () => {
    const mem = new TestPageMemory();
    const cr3 = mem.allocTable();
    const before = mem.snapshot();
    for (const [va, pa, root] of [[VA + 1, 0x8000, cr3], [2 ** 47, 0x8000, cr3], [VA, 0x8001, cr3], [VA, 0x8000, cr3 + 4]]) {
      expect(errnoOf(() => mapPage(mem, root, va, pa, { writable: true, user: true }, mem.allocTable))).toBe('EINVAL');
    }
    expect(mem.snapshot()).toEqual(before);
  });

  it('links nothing when allocTable fails midway', () => {
    const mem = new TestPageMemory();
    const cr3 = mem.allocTable();
    const before = mem.pages.get(cr3)?.toString('hex');
    let calls = 0;
    const failing = (): number => {
      if (++calls === 2) throw new KernelError('ENOMEM', 'no table');
      return mem.allocTable();
    };
    expect(errnoOf(() => mapPage(mem, cr3, VA, 0x8000, { writable: true, user: true }, failing))).toBe('ENOMEM');
    expect(mem.pages.get(cr3)?.toString('hex')).toBe(before);
    expect(walk4Level(cr3, VA, { write: false }, mem)).toMatchObject({ ok: false, reason: 'not-present', level: 4 });
  });

  it('unmaps and protects only mapped pages', () => {
    const mem = new TestPageMemory();
    const cr3 = mem.allocTable();
    expect(unmapPage(mem, cr3, VA)).toBe(false);
    expect(protectPage(mem, cr3, VA, { writable: false, user: false })).toBe(false);
    mapPage(mem, cr3, VA, 0x8000, { writable: true, user: true }, mem.allocTable);
    walk4Level(cr3, VA, { write: true }, mem); // sets A/D
    expect(protectPage(mem, cr3, VA, { writable: false, user: false })).toBe(true);
    expect(findLeaf(mem, cr3, VA).pte).toMatchObject({ address: 0x8000, writable: false, user: false, accessed: true, dirty: true });
    expect(walk4Level(cr3, VA, { write: true }, mem)).toMatchObject({ ok: false, reason: 'write-denied' });
    expect(unmapPage(mem, cr3, VA)).toBe(true);
    expect(walk4Level(cr3, VA, { write: false }, mem)).toMatchObject({ ok: false, reason: 'not-present', level: 1 });
    expect(unmapPage(mem, cr3, VA)).toBe(false);
  });

  it('reports an unreadable table as EFAULT', () => {
    const mem = new TestPageMemory();
    const cr3 = mem.allocTable();
    mem.unreadable.add(cr3);
    expect(errnoOf(() => mapPage(mem, cr3, VA, 0x8000, { writable: true, user: true }, mem.allocTable))).toBe('EFAULT');
  });
});
