import { decodePte, pageTableIndexes } from '@app/shared/x86/pte';
import { findLeaf, mapPage, unmapPage } from '@app/shared/x86/map';
import type { WalkMemory } from '@app/shared/x86/walk';
import { Iotlb } from './iotlb';
import { dmaAccess, translate, type PageTableView, type PhysicalMemoryPort } from './translate';

/** Sparse physical memory: a Map of 4 KiB frames. */
class FakePhys implements PhysicalMemoryPort {
  readonly frames = new Map<number, Buffer>();
  writes = 0;
  private frame(hpa: number): Buffer {
    const base = hpa - (hpa % 4096);
    let f = this.frames.get(base);
    if (!f) this.frames.set(base, (f = Buffer.alloc(4096)));
    return f;
  }
  read(hpa: number, length: number): Buffer {
    const out = Buffer.alloc(length);
    for (let i = 0; i < length; i++) out[i] = this.frame(hpa + i)[(hpa + i) % 4096];
    return out;
  }
  write(hpa: number, data: Buffer): void {
    this.writes++;
    for (let i = 0; i < data.length; i++) this.frame(hpa + i)[(hpa + i) % 4096] = data[i];
  }
  readU32(hpa: number): number {
    return this.frame(hpa).readUInt32LE(hpa % 4096);
  }
  writeU32(hpa: number, value: number): void {
    this.writes++;
    this.frame(hpa).writeUInt32LE(value >>> 0, hpa % 4096);
  }
  readPte(hpa: number, out: Uint32Array): void {
    out[0] = this.readU32(hpa);
    out[1] = this.readU32(hpa + 4);
  }
}

type IovaView = Extract<PageTableView, { kind: 'iova' }>;

/** An iova table: GPA page → { hpa, read, write }. GPA g is backed by HPA g + 0x1000_0000 by default. */
function iovaView(id: number, pages: Map<number, { hpa: number; read: boolean; write: boolean }>): IovaView {
  return { kind: 'iova', id, destroyed: false, lookup: (iova) => pages.get(iova) ?? null };
}

const HPA_OFFSET = 0x1000_0000;
const GVA = 0x40_0000_0000 + 0x1234_5000;

/** A guest: RAM pages [0, n) mapped in the parent; guest tables written through the parent (as the guest would). */
function guest(ramPages = 64) {
  const phys = new FakePhys();
  const gpaMap = new Map<number, { hpa: number; read: boolean; write: boolean }>();
  for (let p = 0; p < ramPages; p++) gpaMap.set(p * 4096, { hpa: p * 4096 + HPA_OFFSET, read: true, write: true });
  const parent = iovaView(1, gpaMap);
  let nextTable = 0x1000;
  const gmem: Required<WalkMemory> = {
    readU64: (gpa) => phys.read(gpa + HPA_OFFSET, 8).readBigUInt64LE(0),
    writeU64: (gpa, v) => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(v);
      phys.write(gpa + HPA_OFFSET, b);
      return true;
    },
  };
  const alloc = (): number => (nextTable += 4096);
  const cr3 = alloc();
  const nested: Extract<PageTableView, { kind: 'nested' }> = { kind: 'nested', id: 2, destroyed: false, root: cr3, parent };
  return { phys, gpaMap, parent, gmem, alloc, cr3, nested, tlb: new Iotlb(64) };
}

describe('translate', () => {
  it('no route and destroyed tables fault without touching memory', () => {
    const g = guest();
    expect(translate(null, 0, { write: false }, g.phys, g.tlb)).toEqual({ ok: false, reason: 'no-route' });
    expect(translate({ ...g.parent, destroyed: true }, 0, { write: false }, g.phys, g.tlb)).toEqual({ ok: false, reason: 'translation-blocked' });
    expect(translate({ ...g.nested, destroyed: true }, GVA, { write: false }, g.phys, g.tlb)).toEqual({ ok: false, reason: 'translation-blocked' });
  });

  it('iova: maps pages with R/W permissions', () => {
    const pages = new Map([[0x5000, { hpa: 0x9000, read: true, write: false }]]);
    const view = iovaView(7, pages);
    const phys = new FakePhys();
    const tlb = new Iotlb();
    expect(translate(view, 0x5123, { write: false }, phys, tlb)).toEqual({ ok: true, hpa: 0x9123 });
    expect(translate(view, 0x5123, { write: true }, phys, tlb)).toEqual({ ok: false, reason: 'sl-write-denied' });
    expect(translate(view, 0x6000, { write: false }, phys, tlb)).toEqual({ ok: false, reason: 'sl-not-present' });
    pages.set(0x7000, { hpa: 0xa000, read: false, write: true });
    expect(translate(view, 0x7000, { write: false }, phys, tlb)).toEqual({ ok: false, reason: 'sl-read-denied' });
    expect(translate(view, 2 ** 48, { write: false }, phys, tlb)).toEqual({ ok: false, reason: 'address-beyond-width' });
  });

  it('mm: host SVA through the process page table', () => {
    const view: PageTableView = { kind: 'mm', id: 3, destroyed: false, lookup: (hva) => (hva === 0x7f00_0000_0000 ? { hpa: 0x3000, writable: false } : null) };
    const phys = new FakePhys();
    const tlb = new Iotlb();
    expect(translate(view, 0x7f00_0000_0010, { write: false }, phys, tlb)).toEqual({ ok: true, hpa: 0x3010 });
    expect(translate(view, 0x7f00_0000_0010, { write: true }, phys, tlb)).toEqual({ ok: false, reason: 'fl-write-denied' });
    expect(translate(view, 0x1000, { write: false }, phys, tlb)).toEqual({ ok: false, reason: 'fl-not-present' });
    expect(translate(view, 2 ** 47, { write: false }, phys, tlb)).toEqual({ ok: false, reason: 'fl-non-canonical' });
  });

  it('nested: GVA → guest table → GPA → parent → HPA, setting A/D in guest memory', () => {
    const g = guest();
    mapPage(g.gmem, g.cr3, GVA, 0x20000, { writable: true, user: true }, g.alloc);
    expect(translate(g.nested, GVA + 0x10, { write: false }, g.phys, g.tlb)).toEqual({ ok: true, hpa: 0x20010 + HPA_OFFSET });
    expect(findLeaf(g.gmem, g.cr3, GVA).pte).toMatchObject({ accessed: true, dirty: false });
    expect(translate(g.nested, GVA + 0x10, { write: true }, g.phys, g.tlb)).toEqual({ ok: true, hpa: 0x20010 + HPA_OFFSET });
    expect(findLeaf(g.gmem, g.cr3, GVA).pte).toMatchObject({ accessed: true, dirty: true });
  });

  it('nested: first-stage faults map to VT-d first-stage reasons', () => {
    const g = guest();
    expect(translate(g.nested, GVA, { write: false }, g.phys, g.tlb)).toEqual({ ok: false, reason: 'fl-not-present' });
    mapPage(g.gmem, g.cr3, GVA, 0x20000, { writable: false, user: true }, g.alloc);
    expect(translate(g.nested, GVA, { write: true }, g.phys, g.tlb)).toEqual({ ok: false, reason: 'fl-write-denied' });
    expect(translate(g.nested, 2 ** 47, { write: false }, g.phys, g.tlb)).toEqual({ ok: false, reason: 'fl-non-canonical' });
    const leaf = findLeaf(g.gmem, g.cr3, GVA);
    g.gmem.writeU64(leaf.entryAddress, (g.gmem.readU64(leaf.entryAddress) as bigint) | (1n << 49n));
    expect(translate(g.nested, GVA, { write: false }, g.phys, g.tlb)).toEqual({ ok: false, reason: 'fl-reserved' });
  });

  it('nested: a guest table page missing in the parent is a second-stage fault, not a first-stage miss, at every level', () => {
    // Each level in a guest of its own, the other three tables present: the walk reaches that level's read and
    // faults there (a walk stopped earlier would not have set the A bits of the levels above it).
    for (const level of [0, 1, 2, 3]) {
      const g = guest();
      mapPage(g.gmem, g.cr3, GVA, 0x20000, { writable: true, user: true }, g.alloc);
      const tables = [g.cr3];
      pageTableIndexes(GVA)
        .slice(0, 3)
        .forEach((index, i) => tables.push(decodePte(g.gmem.readU64(tables[i] + index * 8) as bigint).address));
      expect(new Set(tables).size).toBe(4); // PML4, PDPT, PD, PT: four pages
      g.gpaMap.delete(tables[level]);
      expect(translate(g.nested, GVA, { write: false }, g.phys, g.tlb)).toEqual({ ok: false, reason: 'sl-table-not-present' });
      const accessed = pageTableIndexes(GVA)
        .slice(0, level)
        .map((index, i) => decodePte(g.gmem.readU64(tables[i] + index * 8) as bigint).accessed);
      expect(accessed).toEqual(Array.from({ length: level }, () => true));
      expect(findLeaf(g.gmem, g.cr3, GVA).pte).toMatchObject({ accessed: false }); // no leaf was used
    }
  });

  it('nested: the final GPA goes through the parent with its permissions', () => {
    const g = guest();
    mapPage(g.gmem, g.cr3, GVA, 0x20000, { writable: true, user: true }, g.alloc);
    mapPage(g.gmem, g.cr3, GVA + 4096, 0x800_0000, { writable: true, user: true }, g.alloc); // GPA outside RAM
    g.gpaMap.set(0x20000, { hpa: 0x20000 + HPA_OFFSET, read: true, write: false });
    expect(translate(g.nested, GVA, { write: true }, g.phys, g.tlb)).toEqual({ ok: false, reason: 'sl-write-denied' });
    expect(translate(g.nested, GVA + 4096, { write: false }, g.phys, g.tlb)).toEqual({ ok: false, reason: 'sl-not-present' });
  });

  it('nested: A/D update needs write permission on the table page in the parent', () => {
    const g = guest();
    mapPage(g.gmem, g.cr3, GVA, 0x20000, { writable: true, user: true }, g.alloc);
    g.gpaMap.set(g.cr3, { hpa: g.cr3 + HPA_OFFSET, read: true, write: false });
    expect(translate(g.nested, GVA, { write: false }, g.phys, g.tlb)).toEqual({ ok: false, reason: 'fl-ad-update-failed' });
  });

  it('nested pass-through (no root): the PASID sees GPA space', () => {
    const g = guest();
    const pt: PageTableView = { ...g.nested, root: null };
    expect(translate(pt, 0x3008, { write: true }, g.phys, g.tlb)).toEqual({ ok: true, hpa: 0x3008 + HPA_OFFSET });
    expect(translate(pt, 0x800_0000, { write: false }, g.phys, g.tlb)).toEqual({ ok: false, reason: 'sl-not-present' });
    expect(translate({ ...pt, parent: { ...g.parent, destroyed: true } }, 0, { write: false }, g.phys, g.tlb)).toEqual({ ok: false, reason: 'translation-blocked' });
  });

  it('keeps a stale translation until the IOTLB is invalidated', () => {
    const g = guest();
    mapPage(g.gmem, g.cr3, GVA, 0x20000, { writable: true, user: true }, g.alloc);
    expect(translate(g.nested, GVA, { write: true }, g.phys, g.tlb)).toMatchObject({ ok: true });
    unmapPage(g.gmem, g.cr3, GVA); // the guest forgets to invalidate
    expect(translate(g.nested, GVA, { write: true }, g.phys, g.tlb)).toEqual({ ok: true, hpa: 0x20000 + HPA_OFFSET });
    g.tlb.invalidate(g.nested.id, GVA, 4096);
    expect(translate(g.nested, GVA, { write: true }, g.phys, g.tlb)).toEqual({ ok: false, reason: 'fl-not-present' });
  });

  it('nested: a user request (PR = 0) to a supervisor page faults; a privileged one passes; the IOTLB keeps U/S', () => {
    const g = guest();
    mapPage(g.gmem, g.cr3, GVA, 0x20000, { writable: true, user: false }, g.alloc);
    for (const write of [false, true]) {
      expect(translate(g.nested, GVA, { write }, g.phys, g.tlb)).toEqual({ ok: false, reason: 'fl-privilege-denied' });
      expect(translate(g.nested, GVA, { write, privileged: false }, g.phys, g.tlb)).toEqual({ ok: false, reason: 'fl-privilege-denied' });
    }
    expect(findLeaf(g.gmem, g.cr3, GVA).pte).toMatchObject({ accessed: false, dirty: false }); // a denied access sets no A/D
    // A supervisor translation is cached, yet never satisfies a later user request.
    expect(translate(g.nested, GVA + 8, { write: true, privileged: true }, g.phys, g.tlb)).toEqual({ ok: true, hpa: 0x20008 + HPA_OFFSET });
    expect(g.tlb.lookup(g.nested.id, GVA, { write: true, privileged: true })).toMatchObject({ user: false });
    expect(translate(g.nested, GVA, { write: false }, g.phys, g.tlb)).toEqual({ ok: false, reason: 'fl-privilege-denied' });
    expect(dmaAccess(g.nested, GVA, 8, true, Buffer.alloc(8, 1), g.phys, g.tlb)).toEqual({ ok: false, address: GVA, reason: 'fl-privilege-denied' });
    expect(dmaAccess(g.nested, GVA, 8, true, Buffer.alloc(8, 1), g.phys, g.tlb, true)).toEqual({ ok: true });
    // U/S is ANDed over the levels: a user leaf under a supervisor directory is still a supervisor page.
    const h = guest();
    mapPage(h.gmem, h.cr3, GVA, 0x20000, { writable: true, user: true }, h.alloc);
    h.gmem.writeU64(h.cr3 + pageTableIndexes(GVA)[0] * 8, (h.gmem.readU64(h.cr3 + pageTableIndexes(GVA)[0] * 8) as bigint) & ~4n);
    expect(translate(h.nested, GVA, { write: false }, h.phys, h.tlb)).toEqual({ ok: false, reason: 'fl-privilege-denied' });
  });

  it('second-stage-only and pass-through translations have no U/S: user requests pass', () => {
    const g = guest();
    expect(translate(g.parent, 0x3000, { write: true, privileged: false }, g.phys, g.tlb)).toEqual({ ok: true, hpa: 0x3000 + HPA_OFFSET });
    expect(translate({ ...g.nested, root: null }, 0x3000, { write: true }, g.phys, g.tlb)).toEqual({ ok: true, hpa: 0x3000 + HPA_OFFSET });
  });

  it('re-walks a cached read-only translation on a write so D gets set', () => {
    const g = guest();
    mapPage(g.gmem, g.cr3, GVA, 0x20000, { writable: true, user: true }, g.alloc);
    translate(g.nested, GVA, { write: false }, g.phys, g.tlb);
    expect(findLeaf(g.gmem, g.cr3, GVA).pte.dirty).toBe(false);
    translate(g.nested, GVA, { write: true }, g.phys, g.tlb);
    expect(decodePte(g.gmem.readU64(findLeaf(g.gmem, g.cr3, GVA).entryAddress) as bigint).dirty).toBe(true);
  });
});

describe('dmaAccess', () => {
  it('reads and writes across page boundaries through non-contiguous frames', () => {
    const pages = new Map([
      [0x0000, { hpa: 0x9000, read: true, write: true }],
      [0x1000, { hpa: 0x3000, read: true, write: true }],
    ]);
    const view = iovaView(1, pages);
    const phys = new FakePhys();
    const tlb = new Iotlb();
    const data = Buffer.from(Array.from({ length: 200 }, (_, i) => i));
    expect(dmaAccess(view, 0xfa0, 200, true, data, phys, tlb)).toEqual({ ok: true });
    expect(phys.read(0x9fa0, 0x60)).toEqual(data.subarray(0, 0x60));
    expect(phys.read(0x3000, 200 - 0x60)).toEqual(data.subarray(0x60));
    expect(dmaAccess(view, 0xfa0, 200, false, undefined, phys, tlb)).toEqual({ ok: true, data });
  });

  it('transfers nothing when any page faults and reports the first faulting byte', () => {
    const pages = new Map([
      [0x0000, { hpa: 0x9000, read: true, write: true }],
      [0x1000, { hpa: 0x3000, read: true, write: false }],
    ]);
    const phys = new FakePhys();
    const r = dmaAccess(iovaView(1, pages), 0x800, 0x1000, true, Buffer.alloc(0x1000, 0xff), phys, new Iotlb());
    expect(r).toEqual({ ok: false, address: 0x1000, reason: 'sl-write-denied' });
    expect(phys.writes).toBe(0);
    expect(phys.read(0x9800, 0x800).every((x) => x === 0)).toBe(true);
  });

  it('rejects a write without matching data with EINVAL', () => {
    const view = iovaView(1, new Map());
    expect(() => dmaAccess(view, 0, 4, true, Buffer.alloc(3), new FakePhys(), new Iotlb())).toThrow(expect.objectContaining({ errno: 'EINVAL' }));
  });
});

describe('nested: the paging-structure cache (PDE level)', () => {
  /** The guest-physical address of the PDE that maps va (levels 4 and 3 read from the guest's tables). */
  function pdeAddress(g: ReturnType<typeof guest>, va: number): number {
    const [i4, i3, i2] = pageTableIndexes(va);
    const pdpt = decodePte(g.gmem.readU64(g.cr3 + i4 * 8) as bigint).address;
    const pd = decodePte(g.gmem.readU64(pdpt + i3 * 8) as bigint).address;
    return pd + i2 * 8;
  }
  const mapped = (g: ReturnType<typeof guest>, va: number, gpa: number, writable = true, user = true): void =>
    mapPage(g.gmem, g.cr3, va, gpa, { writable, user }, g.alloc);

  it('a second walk of the same 2 MiB reads only its PTE, through the PT the cached PDE names until an INVALIDATE', () => {
    const g = guest();
    mapped(g, GVA, 0x20000);
    mapped(g, GVA + 4096, 0x21000);
    expect(translate(g.nested, GVA, { write: false }, g.phys, g.tlb)).toEqual({ ok: true, hpa: 0x20000 + HPA_OFFSET });
    expect(g.tlb.pde.stats).toEqual({ hits: 0, misses: 1, entries: 1 });
    expect(translate(g.nested, GVA + 4096, { write: false }, g.phys, g.tlb)).toEqual({ ok: true, hpa: 0x21000 + HPA_OFFSET });
    expect(g.tlb.pde.stats).toEqual({ hits: 1, misses: 1, entries: 1 });
    // The guest moves the 2 MiB to a new PT that also maps a third page, and does not invalidate.
    const oldPt = decodePte(g.gmem.readU64(pdeAddress(g, GVA)) as bigint).address;
    const newPt = g.alloc();
    for (let i = 0; i < 512; i++) g.gmem.writeU64(newPt + i * 8, g.gmem.readU64(oldPt + i * 8) as bigint);
    const third = findLeaf(g.gmem, g.cr3, GVA).entryAddress - oldPt + newPt + 16;
    g.gmem.writeU64(third, 0x22000n | 0x7n); // P, R/W, U/S
    g.gmem.writeU64(pdeAddress(g, GVA), (g.gmem.readU64(pdeAddress(g, GVA)) as bigint) - BigInt(oldPt) + BigInt(newPt));
    expect(translate(g.nested, GVA + 2 * 4096, { write: false }, g.phys, g.tlb)).toEqual({ ok: false, reason: 'fl-not-present' });
    // A refused flush (EINVAL) drops nothing: the old PT still answers.
    expect(() => g.tlb.invalidate(g.nested.id, -4096, 4096)).toThrow(expect.objectContaining({ errno: 'EINVAL' }));
    expect(g.tlb.pde.stats.entries).toBe(1);
    expect(translate(g.nested, GVA + 2 * 4096, { write: false }, g.phys, g.tlb)).toEqual({ ok: false, reason: 'fl-not-present' });
    // A page-selective INVALIDATE of another page drops the table's whole PDE cache (IH = 0).
    g.tlb.invalidate(g.nested.id, 0x1000, 4096);
    expect(g.tlb.pde.stats.entries).toBe(0);
    expect(translate(g.nested, GVA + 2 * 4096, { write: false }, g.phys, g.tlb)).toEqual({ ok: true, hpa: 0x22000 + HPA_OFFSET });
  });

  it('caches only what is present: a missing PDE is seen at the next walk, a faulting PTE leaves its PDE cached', () => {
    const g = guest();
    expect(translate(g.nested, GVA, { write: false }, g.phys, g.tlb)).toEqual({ ok: false, reason: 'fl-not-present' });
    expect(g.tlb.pde.stats.entries).toBe(0);
    mapped(g, GVA, 0x20000); // the guest builds the tables after the fault, with no INVALIDATE
    expect(translate(g.nested, GVA + 4096, { write: false }, g.phys, g.tlb)).toEqual({ ok: false, reason: 'fl-not-present' });
    expect(g.tlb.pde.stats.entries).toBe(1);
    expect(g.tlb.tables()).toContain(g.nested.id); // a fault caches no translation, but the PDE counts
    mapped(g, GVA + 4096, 0x21000); // a not-present PTE is never cached: the retry reads the new one
    expect(translate(g.nested, GVA + 4096, { write: false }, g.phys, g.tlb)).toEqual({ ok: true, hpa: 0x21000 + HPA_OFFSET });
    expect(g.tlb.pde.stats.hits).toBe(1);
    g.tlb.invalidate(g.nested.id);
    expect(g.tlb.tables()).not.toContain(g.nested.id);
    translate(g.nested, GVA, { write: false }, g.phys, g.tlb);
    g.tlb.invalidate();
    expect(g.tlb.pde.stats.entries).toBe(0);
    expect(g.tlb.tables()).toEqual([]);
  });

  it('R/W and U/S of the levels above a cached PDE still deny a write and a user request', () => {
    const g = guest();
    mapped(g, GVA, 0x20000);
    mapped(g, GVA + 4096, 0x21000);
    const pde = pdeAddress(g, GVA);
    g.gmem.writeU64(pde, (g.gmem.readU64(pde) as bigint) & ~0x2n); // R/W clear in the PDE
    expect(translate(g.nested, GVA, { write: false }, g.phys, g.tlb)).toMatchObject({ ok: true });
    expect(translate(g.nested, GVA + 4096, { write: true }, g.phys, g.tlb)).toEqual({ ok: false, reason: 'fl-write-denied' });
    expect(g.tlb.pde.stats.hits).toBe(1);
    const h = guest();
    mapped(h, GVA, 0x20000);
    mapped(h, GVA + 4096, 0x21000);
    h.gmem.writeU64(pdeAddress(h, GVA), (h.gmem.readU64(pdeAddress(h, GVA)) as bigint) & ~0x4n); // U/S clear
    expect(translate(h.nested, GVA, { write: false, privileged: true }, h.phys, h.tlb)).toMatchObject({ ok: true });
    expect(translate(h.nested, GVA + 4096, { write: false }, h.phys, h.tlb)).toEqual({ ok: false, reason: 'fl-privilege-denied' });
    expect(translate(h.nested, GVA + 4096, { write: false, privileged: true }, h.phys, h.tlb)).toEqual({ ok: true, hpa: 0x21000 + HPA_OFFSET });
    expect(h.tlb.pde.stats.hits).toBe(2);
  });

  it('a walk refused before it reads a table caches nothing: a bad root after a good walk faults every time', () => {
    const g = guest();
    mapped(g, GVA, 0x20000);
    expect(translate(g.nested, GVA, { write: false }, g.phys, g.tlb)).toMatchObject({ ok: true });
    const unaligned = { ...g.nested, root: g.cr3 + 8 };
    for (let i = 0; i < 2; i++) expect(translate(unaligned, GVA + 4096, { write: false }, g.phys, g.tlb)).toEqual({ ok: false, reason: 'fl-reserved' });
    expect(translate(g.nested, 2 ** 47, { write: false }, g.phys, g.tlb)).toEqual({ ok: false, reason: 'fl-non-canonical' });
    expect(g.tlb.pde.stats.entries).toBe(1);
  });

  it('is tagged with the root: the same table id under a new root walks the new tables', () => {
    const g = guest();
    mapped(g, GVA, 0x20000);
    mapped(g, GVA + 4096, 0x21000);
    expect(translate(g.nested, GVA, { write: false }, g.phys, g.tlb)).toMatchObject({ ok: true });
    const root = g.alloc();
    mapPage(g.gmem, root, GVA + 4096, 0x30000, { writable: true, user: true }, g.alloc);
    expect(translate({ ...g.nested, root }, GVA + 4096, { write: false }, g.phys, g.tlb)).toEqual({ ok: true, hpa: 0x30000 + HPA_OFFSET });
    expect(g.tlb.pde.stats).toMatchObject({ hits: 0, misses: 2 });
  });
});
