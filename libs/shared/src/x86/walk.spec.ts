import { decodePte, encodePte, pageTableIndexes } from './pte';
import { mapPage } from './map';
import { walk4Level } from './walk';
import { TestPageMemory } from './x86-test-memory';

const VA = 3 * 2 ** 39 + 5 * 2 ** 30 + 7 * 2 ** 21 + 9 * 2 ** 12;

function setup(flags = { writable: true, user: true }) {
  const mem = new TestPageMemory();
  const cr3 = mem.allocTable();
  mapPage(mem, cr3, VA, 0x4000_0000, flags, mem.allocTable);
  return { mem, cr3 };
}

/** Address of the entry for VA at `level` (4 = PML4) found by following the tables. */
function entryAt(mem: TestPageMemory, cr3: number, level: number): number {
  const idx = pageTableIndexes(VA);
  let table = cr3;
  for (let l = 4; l > level; l--) table = decodePte(mem.readU64(table + idx[4 - l] * 8) as bigint).address;
  return table + idx[4 - level] * 8;
}

describe('walk4Level', () => {
  it('translates, keeping the page offset, and reports permissions', () => {
    const { mem, cr3 } = setup({ writable: false, user: true });
    const r = walk4Level(cr3, VA + 0x123, { write: false }, mem);
    expect(r).toEqual({ ok: true, address: 0x4000_0123, writable: false, user: true, levels: 4 });
  });

  it.each([4, 3, 2, 1])('reports not-present at level %i with the entry address', (level) => {
    const { mem, cr3 } = setup();
    const at = entryAt(mem, cr3, level);
    mem.writeU64(at, (mem.readU64(at) as bigint) & ~1n);
    expect(walk4Level(cr3, VA, { write: false }, mem)).toEqual({ ok: false, reason: 'not-present', level, entryAddress: at });
  });

  it.each([4, 3, 2, 1])('reports reserved-bits at level %i', (level) => {
    const { mem, cr3 } = setup();
    const at = entryAt(mem, cr3, level);
    mem.writeU64(at, (mem.readU64(at) as bigint) | (1n << 50n));
    expect(walk4Level(cr3, VA, { write: false }, mem)).toMatchObject({ ok: false, reason: 'reserved-bits', level });
  });

  it('treats bit 7 as reserved in a PML4E, as large-page in a PDPTE/PDE and as PAT in a PTE', () => {
    for (const [level, expected] of [[4, 'reserved-bits'], [3, 'large-page'], [2, 'large-page']] as const) {
      const { mem, cr3 } = setup();
      const at = entryAt(mem, cr3, level);
      mem.writeU64(at, (mem.readU64(at) as bigint) | 0x80n);
      expect(walk4Level(cr3, VA, { write: false }, mem)).toMatchObject({ ok: false, reason: expected, level });
    }
    const { mem, cr3 } = setup();
    const at = entryAt(mem, cr3, 1);
    mem.writeU64(at, (mem.readU64(at) as bigint) | 0x80n);
    expect(walk4Level(cr3, VA, { write: false }, mem).ok).toBe(true);
  });

  it('denies a write when R/W is clear at any level, without touching the leaf', () => {
    for (const level of [4, 3, 2, 1]) {
      const { mem, cr3 } = setup();
      const at = entryAt(mem, cr3, level);
      mem.writeU64(at, (mem.readU64(at) as bigint) & ~2n);
      const leaf = entryAt(mem, cr3, 1);
      const before = mem.readU64(leaf);
      expect(walk4Level(cr3, VA, { write: true }, mem)).toMatchObject({ ok: false, reason: 'write-denied', level: 1 });
      expect(mem.readU64(leaf)).toBe(before);
      expect(walk4Level(cr3, VA, { write: false }, mem)).toMatchObject({ ok: true, writable: false });
    }
  });

  it('denies a user access when U/S is clear at any level, without touching the leaf; supervisor access is allowed', () => {
    for (const level of [4, 3, 2, 1]) {
      const { mem, cr3 } = setup();
      const at = entryAt(mem, cr3, level);
      mem.writeU64(at, (mem.readU64(at) as bigint) & ~4n);
      const leaf = entryAt(mem, cr3, 1);
      const before = mem.readU64(leaf);
      for (const write of [false, true]) {
        expect(walk4Level(cr3, VA, { write, user: true }, mem)).toMatchObject({ ok: false, reason: 'user-denied', level: 1, entryAddress: leaf });
      }
      expect(mem.readU64(leaf)).toBe(before);
      expect(walk4Level(cr3, VA, { write: true, user: false }, mem)).toMatchObject({ ok: true, user: false });
      expect(walk4Level(cr3, VA, { write: false }, mem)).toMatchObject({ ok: true, user: false });
    }
    const { mem, cr3 } = setup();
    expect(walk4Level(cr3, VA, { write: true, user: true }, mem)).toMatchObject({ ok: true, user: true });
  });

  it('sets A on every level on a read and D on the leaf only on a write', () => {
    const { mem, cr3 } = setup();
    walk4Level(cr3, VA, { write: false }, mem);
    for (const level of [4, 3, 2, 1]) expect(decodePte(mem.readU64(entryAt(mem, cr3, level)) as bigint)).toMatchObject({ accessed: true, dirty: false });
    walk4Level(cr3, VA, { write: true }, mem);
    expect(decodePte(mem.readU64(entryAt(mem, cr3, 1)) as bigint).dirty).toBe(true);
    for (const level of [4, 3, 2]) expect(decodePte(mem.readU64(entryAt(mem, cr3, level)) as bigint).dirty).toBe(false);
  });

  it('does not write at all once A/D are set, or without writeU64', () => {
    const { mem, cr3 } = setup();
    walk4Level(cr3, VA, { write: true }, mem);
    const count = mem.writes.length;
    walk4Level(cr3, VA, { write: true }, mem);
    expect(mem.writes.length).toBe(count);
    const fresh = setup();
    const snapshot = fresh.mem.snapshot();
    const r = walk4Level(fresh.cr3, VA, { write: true }, { readU64: (a) => fresh.mem.readU64(a) });
    expect(r.ok).toBe(true);
    expect(fresh.mem.snapshot()).toEqual(snapshot);
  });

  it('reports table-unreachable for a failed table read or a failed A/D update', () => {
    const { mem, cr3 } = setup();
    const pt = entryAt(mem, cr3, 1);
    mem.unreadable.add(pt - (pt % 4096));
    expect(walk4Level(cr3, VA, { write: false }, mem)).toEqual({ ok: false, reason: 'table-unreachable', level: 1, entryAddress: pt });
    const fresh = setup(); // A not yet set anywhere
    fresh.mem.readOnly.add(fresh.cr3);
    expect(walk4Level(fresh.cr3, VA, { write: false }, fresh.mem)).toMatchObject({ ok: false, reason: 'table-unreachable', level: 4 });
  });

  it('rejects non-canonical addresses and a bad root', () => {
    const { mem, cr3 } = setup();
    expect(walk4Level(cr3, 2 ** 47, { write: false }, mem)).toMatchObject({ ok: false, reason: 'non-canonical' });
    expect(walk4Level(cr3, -1, { write: false }, mem)).toMatchObject({ ok: false, reason: 'non-canonical' });
    expect(walk4Level(cr3 + 8, VA, { write: false }, mem)).toMatchObject({ ok: false, reason: 'reserved-bits', level: 4 });
    expect(walk4Level(2 ** 48, VA, { write: false }, mem)).toMatchObject({ ok: false, reason: 'reserved-bits', level: 4 });
  });

  it('reads a hand-built table exactly as encoded', () => {
    const mem = new TestPageMemory();
    const [pml4, pdpt, pd, pt] = [0x1000, 0x2000, 0x3000, 0x4000];
    const idx = pageTableIndexes(VA);
    mem.writeU64(pml4 + idx[0] * 8, encodePte({ present: true, writable: true, user: true, address: pdpt }));
    mem.writeU64(pdpt + idx[1] * 8, encodePte({ present: true, writable: true, user: false, address: pd }));
    mem.writeU64(pd + idx[2] * 8, encodePte({ present: true, writable: true, user: true, address: pt }));
    mem.writeU64(pt + idx[3] * 8, encodePte({ present: true, writable: true, user: true, address: 0x9000 }));
    expect(walk4Level(pml4, VA + 1, { write: true }, mem)).toEqual({ ok: true, address: 0x9001, writable: true, user: false, levels: 4 });
  });
});
