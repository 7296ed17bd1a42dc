import { encodePasidEntry, Pgtt } from '@app/shared/vtd/pasid-entry';
import { FrameAllocator } from '../mm/frame-allocator';
import { GuestMm } from '../mm/guest-mm';
import { PAGE_SIZE } from '../mm/mm.constants';
import { FakeVmm } from './fake-vmm';
import { SvaDriver } from './sva';

const VRID_A = 0x08;
const VRID_B = 0x10;

async function setup(): Promise<{ vmm: FakeVmm; mm: GuestMm; sva: SvaDriver; frames: FrameAllocator }> {
  const vmm = new FakeVmm({ memoryMiB: 2, vcpus: 1, devices: [{ vrid: VRID_A, bdf: 'a' }, { vrid: VRID_B, bdf: 'b' }] });
  vmm.ram.fill(0xee); // the driver must zero every page it hands to the vIOMMU
  const frames = new FrameAllocator(vmm.ram.length);
  const mm = new GuestMm(vmm, frames);
  const sva = new SvaDriver(vmm, frames, mm);
  await sva.boot([VRID_A, VRID_B]);
  return { vmm, mm, sva, frames };
}

function entryBytes(vmm: FakeVmm, sva: SvaDriver, vrid: number, vpasid: number): Buffer {
  const ctx = sva.contextOf(vrid);
  const table = ctx?.tables.get(vpasid >> 6) as number;
  const off = table + (vpasid & 0x3f) * 64;
  return Buffer.from(vmm.ram.subarray(off, off + 64));
}

describe('SvaDriver', () => {
  it('boot registers one zeroed PASID directory page per vrid', async () => {
    const { vmm, sva } = await setup();
    const dirs = [VRID_A, VRID_B].map((v) => sva.contextOf(v)?.dirGpa as number);
    expect(dirs).toEqual([0x1000, 0x2000]);
    expect([...vmm.contexts.entries()]).toEqual([[VRID_A, 0x1000], [VRID_B, 0x2000]]);
    for (const d of dirs) expect(vmm.ram.subarray(d, d + PAGE_SIZE).every((x) => x === 0)).toBe(true);
  });

  it('bind writes the exact PASID entry {present, PGTT 1, FLPM 0, FLPTR = CR3} and the directory entry, then [pasid-cache, wait]', async () => {
    const { vmm, mm, sva } = await setup();
    const p = await mm.createProcess('a');
    expect(await sva.bind(p.pid, VRID_A)).toBe(1);
    const table = sva.contextOf(VRID_A)?.tables.get(0) as number;
    const expected = Buffer.alloc(64);
    expected.writeBigUInt64LE(0x41n, 0); // P | PGTT 1 << 6
    expected.writeBigUInt64LE(BigInt(p.cr3), 16); // FLPTR, FLPM 0
    expect(entryBytes(vmm, sva, VRID_A, 1)).toEqual(expected);
    expect(expected).toEqual(encodePasidEntry({ present: true, pgtt: Pgtt.FirstLevel, flpm: 0, flptr: p.cr3 }));
    expect(vmm.ram.readBigUInt64LE(0x1000)).toBe(BigInt(table) | 1n);
    // the rest of the new table is zero
    expect(vmm.ram.subarray(table, table + 64).every((x) => x === 0)).toBe(true);
    expect(vmm.ram.subarray(table + 128, table + PAGE_SIZE).every((x) => x === 0)).toBe(true);
    expect(vmm.invalidations.at(-1)).toEqual([{ type: 'pasid-cache', vpasid: 1 }, { type: 'wait' }]);
    expect(vmm.bound.get(`${VRID_A}:1`)).toBe(p.cr3);
  });

  it('allocates the lowest free vPASID, reuses it across devices, and keeps it after the last unbind (mm->pasid)', async () => {
    const { vmm, mm, sva } = await setup();
    const a = await mm.createProcess('a');
    const b = await mm.createProcess('b');
    expect(await sva.bind(a.pid, VRID_A)).toBe(1);
    expect(await sva.bind(b.pid, VRID_A)).toBe(2);
    expect(await sva.bind(a.pid, VRID_B)).toBe(1);
    await sva.unbind(a.pid, VRID_A);
    expect(sva.vpasidOf(a.pid)).toBe(1);
    await sva.unbind(a.pid, VRID_B);
    // The entries are cleared and the VMM dropped the mirror, but the process still owns vPASID 1.
    expect(entryBytes(vmm, sva, VRID_B, 1)).toEqual(Buffer.alloc(64));
    expect([...vmm.bound.keys()]).toEqual([`${VRID_A}:2`]);
    expect(sva.vpasidOf(a.pid)).toBe(1);
    // So a new process never gets it while its owner lives (no process exit yet: never within a boot).
    const c = await mm.createProcess('c');
    expect(await sva.bind(c.pid, VRID_B)).toBe(3);
    expect(await sva.bind(a.pid, VRID_A)).toBe(1);
    expect(sva.bindings()).toEqual([
      { pid: a.pid, vpasid: 1, vrids: [VRID_A] },
      { pid: b.pid, vpasid: 2, vrids: [VRID_A] },
      { pid: c.pid, vpasid: 3, vrids: [VRID_B] },
    ]);
  });

  it('binding the same pair twice counts; the last unbind clears the entry to 64 zero bytes', async () => {
    const { vmm, mm, sva } = await setup();
    const p = await mm.createProcess('a');
    await sva.bind(p.pid, VRID_A);
    const n = vmm.invalidations.length;
    expect(await sva.bind(p.pid, VRID_A)).toBe(1);
    expect(vmm.invalidations.length).toBe(n);
    await sva.unbind(p.pid, VRID_A);
    expect(entryBytes(vmm, sva, VRID_A, 1).readUInt8(0)).toBe(0x41);
    await sva.unbind(p.pid, VRID_A);
    expect(entryBytes(vmm, sva, VRID_A, 1)).toEqual(Buffer.alloc(64));
    expect(vmm.invalidations.at(-1)).toEqual([{ type: 'pasid-cache', vpasid: 1 }, { type: 'wait' }]);
    expect(vmm.bound.size).toBe(0);
    await expect(sva.unbind(p.pid, VRID_A)).rejects.toMatchObject({ errno: 'ENOENT' });
  });

  it('a VMM fault rolls the entry back (clear + pasid-cache + wait), throws its errno and frees the vPASID', async () => {
    const { vmm, mm, sva } = await setup();
    const p = await mm.createProcess('a');
    vmm.refuse = (vrid, v) => (vrid === VRID_A && v === 1 ? 'ENOSPC' : null);
    const n = vmm.invalidations.length;
    await expect(sva.bind(p.pid, VRID_A)).rejects.toMatchObject({ errno: 'ENOSPC' });
    expect(vmm.invalidations.slice(n)).toEqual([
      [{ type: 'pasid-cache', vpasid: 1 }, { type: 'wait' }],
      [{ type: 'pasid-cache', vpasid: 1 }, { type: 'wait' }],
    ]);
    expect(entryBytes(vmm, sva, VRID_A, 1)).toEqual(Buffer.alloc(64));
    expect(sva.bindings()).toEqual([]);
    vmm.refuse = null;
    expect(await sva.bind(p.pid, VRID_A)).toBe(1);
  });

  it('refuses unknown vrids (ENODEV) and processes (ESRCH) without writing anything', async () => {
    const { vmm, mm, sva } = await setup();
    const p = await mm.createProcess('a');
    const before = Buffer.from(vmm.ram);
    const calls = vmm.calls.length;
    await expect(sva.bind(p.pid, 0x18)).rejects.toMatchObject({ errno: 'ENODEV' });
    await expect(sva.bind(42, VRID_A)).rejects.toMatchObject({ errno: 'ESRCH' });
    expect(vmm.calls.length).toBe(calls);
    expect(vmm.ram.equals(before)).toBe(true);
    expect(await sva.bind(p.pid, VRID_A)).toBe(1);
  });

  it('allocates a second PASID table when vPASIDs cross 64', async () => {
    const { vmm, mm, sva } = await setup();
    let last = 0;
    for (let i = 0; i < 64; i++) last = await sva.bind((await mm.createProcess(`p${i}`)).pid, VRID_A);
    expect(last).toBe(64);
    const ctx = sva.contextOf(VRID_A);
    expect(ctx?.tables.size).toBe(2);
    expect(vmm.ram.readBigUInt64LE(0x1000 + 8)).toBe(BigInt(ctx?.tables.get(1) as number) | 1n);
  });

  it('flushIotlb sends one piotlb for the page range of a bound process, nothing for an unbound one', async () => {
    const { vmm, mm, sva } = await setup();
    const p = await mm.createProcess('a');
    const q = await mm.createProcess('b');
    await sva.bind(p.pid, VRID_A);
    await sva.bind(p.pid, VRID_B);
    const n = vmm.invalidations.length;
    await sva.flushIotlb(p.pid, 0x7f0000000010, PAGE_SIZE);
    await sva.flushIotlb(q.pid, 0x7f0000000000, PAGE_SIZE);
    expect(vmm.invalidations.slice(n)).toEqual([[{ type: 'piotlb', vpasid: 1, addr: 0x7f0000000000, npages: 2 }, { type: 'wait' }]]);
  });

  it('flushIotlb is EIO when the vIOMMU reports a fault for the piotlb', async () => {
    const { vmm, mm, sva } = await setup();
    const p = await mm.createProcess('a');
    await sva.bind(p.pid, VRID_A);
    vmm.refusePiotlb = (v) => (v === 1 ? 'ENOMEM' : null);
    await expect(sva.flushIotlb(p.pid, 0x7f0000000000, PAGE_SIZE)).rejects.toMatchObject({ errno: 'EIO' });
    vmm.refusePiotlb = null;
    await expect(sva.flushIotlb(p.pid, 0x7f0000000000, PAGE_SIZE)).resolves.toBeUndefined();
  });
});
