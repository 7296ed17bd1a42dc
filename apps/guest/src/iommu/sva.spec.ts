import { encodePasidEntry, PASID_ENTRY_SIZE, pasidDirEntryOffset, pasidTableEntryOffset, Pgtt } from '@app/shared/vtd/pasid-entry';
import type { HostKernelPort } from '../../../vmm/src/host-kernel.port';
import { type FailWhen, failWhen } from '../../../../stack/fail-when';
import { FrameAllocator } from '../mm/frame-allocator';
import { GuestMm } from '../mm/guest-mm';
import { MMAP_BASE, PAGE_SIZE, RESERVED_LOW_PAGES } from '../mm/mm.constants';
import { DSA0, DSA1, VmOnStack } from '../../../../stack/fixtures/vm-on-stack';
import type { VmmPort } from '../vmm.port';
import { GUEST_VPASID_MIN } from './iommu.constants';
import { hwOps } from '../../../host-kernel/src/hw/hw.ops';
import { SvaDriver } from './sva';

/** The vPASIDs the lowest-first allocator hands out, in order. */
const V1 = GUEST_VPASID_MIN;
const V2 = GUEST_VPASID_MIN + 1;
const V3 = GUEST_VPASID_MIN + 2;
/** 00:1f.7: the VMM puts its devices at function 0, so no VM has this vrid. */
const NO_SUCH_VRID = 0xff;

interface Setup {
  bed: VmOnStack;
  /** The guest's door as the driver sees it: every call logged, any call can be made to fail. */
  door: FailWhen<VmmPort>;
  mm: GuestMm;
  sva: SvaDriver;
  a: number;
  b: number;
}

/** A 2 MiB VM with both accelerators; RAM starts dirty (0xee), so every page the driver hands the vIOMMU must be zeroed by it. */
async function setup(opts: Parameters<typeof VmOnStack.start>[1] = {}): Promise<Setup> {
  const bed = await VmOnStack.start({ memoryMiB: 2, devices: [DSA0, DSA1] }, opts);
  await bed.port.writeMemory(0, Buffer.alloc(bed.ramBytes, 0xee));
  const door = failWhen<VmmPort>(bed.port);
  const frames = new FrameAllocator(bed.ramBytes);
  const mm = new GuestMm(door.port, frames);
  const sva = new SvaDriver(door.port, frames, mm);
  const a = bed.vrid(DSA0);
  const b = bed.vrid(DSA1);
  await sva.boot([a, b]);
  return { bed, door, mm, sva, a, b };
}

async function entryBytes(s: Setup, vrid: number, vpasid: number): Promise<Buffer> {
  const table = s.sva.contextOf(vrid)?.tables.get(pasidDirEntryOffset(vpasid) / 8) as number;
  return s.bed.port.readMemory(table + pasidTableEntryOffset(vpasid), PASID_ENTRY_SIZE);
}

/** The vIOMMU's mirrors as (vPASID, vrids), by vPASID. */
function mirrored(s: Setup): Array<[number, number[]]> {
  return s.bed.viommu
    .bindings()
    .map((x): [number, number[]] => [x.vpasid, x.vrids])
    .sort((x, y) => x[0] - y[0]);
}

afterEach(() => VmOnStack.closeAll());

describe('SvaDriver', () => {
  it('boot registers one zeroed PASID directory page per vrid', async () => {
    const s = await setup();
    const dirs = [s.a, s.b].map((v) => s.sva.contextOf(v)?.dirGpa as number);
    // The frame allocator goes lowest first and keeps the low pages reserved: the directories are its first two frames.
    expect(dirs).toEqual([RESERVED_LOW_PAGES * PAGE_SIZE, (RESERVED_LOW_PAGES + 1) * PAGE_SIZE]);
    expect([s.a, s.b].map((v) => s.bed.viommu.contextOf(v))).toEqual(dirs);
    const ram = await s.bed.ram();
    for (const d of dirs) expect(ram.subarray(d, d + PAGE_SIZE).every((x) => x === 0)).toBe(true);
  });

  it('bind writes the exact PASID entry {present, PGTT 1, FLPM 0, FLPTR = CR3} and the directory entry, then [pasid-cache, wait]', async () => {
    const s = await setup();
    const p = await s.mm.createProcess('a');
    const n = (await s.bed.invalidations()).length;
    expect(await s.sva.bind(p.pid, s.a)).toBe(V1);
    const dir = s.sva.contextOf(s.a)?.dirGpa as number;
    const table = s.sva.contextOf(s.a)?.tables.get(0) as number;
    const expected = Buffer.alloc(64);
    expected.writeBigUInt64LE(0x41n, 0); // P | PGTT 1 << 6
    expected.writeBigUInt64LE(BigInt(p.cr3), 16); // FLPTR, FLPM 0
    expect(await entryBytes(s, s.a, V1)).toEqual(expected);
    expect(expected).toEqual(encodePasidEntry({ present: true, pgtt: Pgtt.FirstLevel, flpm: 0, flptr: p.cr3 }));
    const ram = await s.bed.ram();
    expect(ram.readBigUInt64LE(dir)).toBe(BigInt(table) | 1n);
    // the rest of the new table is zero
    expect(ram.subarray(table, table + 64).every((x) => x === 0)).toBe(true);
    expect(ram.subarray(table + 128, table + PAGE_SIZE).every((x) => x === 0)).toBe(true);
    expect((await s.bed.invalidations()).slice(n)).toEqual([[{ type: 'pasid-cache', vpasid: V1 }, { type: 'wait' }]]);
    // The VMM read that entry and mirrored it: a host ioasid nested over the VM's GPA space with root = CR3,
    // allowed on the device, and KVM maps the vPASID to it.
    const [mirror] = s.bed.viommu.bindings();
    expect(mirror).toMatchObject({ vpasid: V1, entry: { pgtt: Pgtt.FirstLevel, flptr: p.cr3 }, vrids: [s.a] });
    expect((await s.bed.hostRows('ioasid.bind_pgtbl')).at(-1)?.args).toMatchObject({ ioasid: mirror.ioasid, kind: 'nested', root: p.cr3 });
    expect(s.bed.kvmPasids()).toEqual([{ vpasid: V1, ppasid: mirror.ioasid, translates: true }]);
  });

  it('allocates the lowest free vPASID, reuses it across devices, and keeps it after the last unbind (mm->pasid)', async () => {
    const s = await setup();
    const a = await s.mm.createProcess('a');
    const b = await s.mm.createProcess('b');
    expect(await s.sva.bind(a.pid, s.a)).toBe(V1);
    expect(await s.sva.bind(b.pid, s.a)).toBe(V2);
    expect(await s.sva.bind(a.pid, s.b)).toBe(V1);
    expect(mirrored(s)).toEqual([[V1, [s.a, s.b]], [V2, [s.a]]]);
    await s.sva.unbind(a.pid, s.a);
    expect(s.sva.vpasidOf(a.pid)).toBe(V1);
    await s.sva.unbind(a.pid, s.b);
    // The entries are cleared and the VMM dropped its mirror (KVM no longer maps V1), but the process still owns it.
    expect(await entryBytes(s, s.b, V1)).toEqual(Buffer.alloc(64));
    expect(mirrored(s)).toEqual([[V2, [s.a]]]);
    expect(s.bed.kvmPasids().map((m) => m.vpasid)).toEqual([V2]);
    expect(s.sva.vpasidOf(a.pid)).toBe(V1);
    // So a new process never gets it while its owner lives (no process exit yet: never within a boot).
    const c = await s.mm.createProcess('c');
    expect(await s.sva.bind(c.pid, s.b)).toBe(V3);
    expect(await s.sva.bind(a.pid, s.a)).toBe(V1);
    expect(s.sva.bindings()).toEqual([
      { pid: a.pid, vpasid: V1, vrids: [s.a] },
      { pid: b.pid, vpasid: V2, vrids: [s.a] },
      { pid: c.pid, vpasid: V3, vrids: [s.b] },
    ]);
    expect(mirrored(s)).toEqual([[V1, [s.a]], [V2, [s.a]], [V3, [s.b]]]);
  });

  it('binding the same pair twice counts; the last unbind clears the entry to 64 zero bytes', async () => {
    const s = await setup();
    const p = await s.mm.createProcess('a');
    await s.sva.bind(p.pid, s.a);
    const n = (await s.bed.invalidations()).length;
    expect(await s.sva.bind(p.pid, s.a)).toBe(V1);
    expect((await s.bed.invalidations()).length).toBe(n);
    await s.sva.unbind(p.pid, s.a);
    expect((await entryBytes(s, s.a, V1)).readUInt8(0)).toBe(0x41);
    expect(mirrored(s)).toEqual([[V1, [s.a]]]);
    await s.sva.unbind(p.pid, s.a);
    expect(await entryBytes(s, s.a, V1)).toEqual(Buffer.alloc(64));
    expect((await s.bed.invalidations()).at(-1)).toEqual([{ type: 'pasid-cache', vpasid: V1 }, { type: 'wait' }]);
    expect(mirrored(s)).toEqual([]);
    expect(s.bed.kvmPasids()).toEqual([]);
    await expect(s.sva.unbind(p.pid, s.a)).rejects.toMatchObject({ errno: 'ENOENT' });
  });

  it('a VMM fault rolls the entry back (clear + pasid-cache + wait), throws its errno and frees the vPASID', async () => {
    // A VM allowed one bound vPASID at a time: the vIOMMU refuses a second with ENOSPC (VMM_PASID_QUOTA).
    const s = await setup({ pasidQuota: 1 });
    const q = await s.mm.createProcess('holder');
    const p = await s.mm.createProcess('a');
    expect(await s.sva.bind(q.pid, s.a)).toBe(V1);
    const n = (await s.bed.invalidations()).length;
    await expect(s.sva.bind(p.pid, s.a)).rejects.toMatchObject({ errno: 'ENOSPC' });
    expect((await s.bed.invalidations()).slice(n)).toEqual([
      [{ type: 'pasid-cache', vpasid: V2 }, { type: 'wait' }],
      [{ type: 'pasid-cache', vpasid: V2 }, { type: 'wait' }],
    ]);
    expect(s.bed.viommu.faults().at(-1)).toMatchObject({ vrid: s.a, vpasid: V2, errno: 'ENOSPC' });
    expect(await entryBytes(s, s.a, V2)).toEqual(Buffer.alloc(64));
    expect(s.sva.bindings()).toEqual([{ pid: q.pid, vpasid: V1, vrids: [s.a] }]);
    expect(mirrored(s)).toEqual([[V1, [s.a]]]);
    // Once the quota has room, the same process binds again and gets the vPASID back (it was freed: else V3).
    await s.sva.unbind(q.pid, s.a);
    expect(await s.sva.bind(p.pid, s.a)).toBe(V2);
    expect(mirrored(s)).toEqual([[V2, [s.a]]]);
  });

  it('a DMA fault of the same vPASID landing while a bind is in flight does not refuse the bind: only entry faults do', async () => {
    // The VMM's door to the host lets a hook run just before each ALLOW: there the device on vrid b — the one being
    // bound — faults a DMA tagged with the process's pPASID (its ENQCMD there raced the bind: no route yet), and the
    // record reaches the vIOMMU while the bind's [pasid-cache, wait] is in flight.
    let beforeAllow: (() => Promise<void>) | null = null;
    const hooked = (port: HostKernelPort): HostKernelPort =>
      new Proxy(port, {
        get(t, prop, receiver) {
          const v = Reflect.get(t, prop, receiver) as unknown;
          if (prop === 'as') return (token: string) => hooked(t.as(token));
          if (prop === 'allowIoasid') return async (...args: Parameters<HostKernelPort['allowIoasid']>) => (await beforeAllow?.(), t.allowIoasid(...args));
          return v;
        },
      });
    const s = await setup({ wrapHost: hooked });
    const p = await s.mm.createProcess('racer');
    expect(await s.sva.bind(p.pid, s.a)).toBe(V1);
    const ppasid = s.bed.viommu.bindings().find((b) => b.vpasid === V1)?.ioasid as number;
    beforeAllow = async () => {
      beforeAllow = null;
      await s.bed.stack.host.dispatcher.exec(hwOps.dma, s.bed.stack.host.authorize(hwOps.dma, s.bed.stack.hostAdminToken), { bdf: DSA1, pasid: ppasid, address: 0x7ff0_0000, length: 8, write: false });
      await s.bed.stack.settle();
    };
    expect(await s.sva.bind(p.pid, s.b)).toBe(V1);
    // The fault was recorded during the bind, for V1 on vrid b, as a DMA fault.
    expect(s.bed.viommu.faults()).toEqual([expect.objectContaining({ vrid: s.b, vpasid: V1, access: 'read' })]);
    expect(mirrored(s)).toEqual([[V1, [s.a, s.b]]]);
    expect(s.sva.bindings()).toEqual([{ pid: p.pid, vpasid: V1, vrids: [s.a, s.b].sort((x, y) => x - y) }]);
  });

  it('refuses unknown vrids (ENODEV) and processes (ESRCH) without writing anything', async () => {
    const s = await setup();
    expect(s.bed.machine.devices.map((d) => d.vrid)).not.toContain(NO_SUCH_VRID);
    const p = await s.mm.createProcess('a');
    const before = await s.bed.ram();
    const calls = s.door.calls.length;
    await expect(s.sva.bind(p.pid, NO_SUCH_VRID)).rejects.toMatchObject({ errno: 'ENODEV' });
    await expect(s.sva.bind(42, s.a)).rejects.toMatchObject({ errno: 'ESRCH' });
    expect(s.door.calls.length).toBe(calls);
    expect((await s.bed.ram()).equals(before)).toBe(true);
    expect(await s.sva.bind(p.pid, s.a)).toBe(V1);
  });

  it('allocates a second PASID table when vPASIDs cross 64', async () => {
    const s = await setup();
    let last = 0;
    let lastCr3 = 0;
    for (let i = 0; i < 64; i++) {
      const p = await s.mm.createProcess(`p${i}`);
      last = await s.sva.bind(p.pid, s.a);
      lastCr3 = p.cr3;
    }
    expect(last).toBe(GUEST_VPASID_MIN + 63);
    const ctx = s.sva.contextOf(s.a);
    expect(ctx?.tables.size).toBe(2);
    const ram = await s.bed.ram();
    expect(ram.readBigUInt64LE((ctx?.dirGpa as number) + 8)).toBe(BigInt(ctx?.tables.get(1) as number) | 1n);
    // The VMM found the entry of vPASID 64 through that second directory entry and table.
    expect(s.bed.viommu.bindings().find((x) => x.vpasid === last)).toMatchObject({ entry: { pgtt: Pgtt.FirstLevel, flptr: lastCr3 }, vrids: [s.a] });
  });

  it('flushIotlb sends one piotlb for the page range of a bound process, nothing for an unbound one', async () => {
    const s = await setup();
    const p = await s.mm.createProcess('a');
    const q = await s.mm.createProcess('b');
    await s.sva.bind(p.pid, s.a);
    await s.sva.bind(p.pid, s.b);
    const n = (await s.bed.invalidations()).length;
    const hostFlushes = (await s.bed.hostRows('ioasid.invalidate')).length;
    await s.sva.flushIotlb(p.pid, MMAP_BASE + 0x10, PAGE_SIZE);
    await s.sva.flushIotlb(q.pid, MMAP_BASE, PAGE_SIZE);
    expect((await s.bed.invalidations()).slice(n)).toEqual([[{ type: 'piotlb', vpasid: V1, addr: MMAP_BASE, npages: 2 }, { type: 'wait' }]]);
    // One host IOTLB invalidation of the vPASID's ioasid (shared by both devices), for the two pages.
    const [mirror] = s.bed.viommu.bindings();
    expect((await s.bed.hostRows('ioasid.invalidate')).slice(hostFlushes).map((r) => r.args)).toEqual([
      expect.objectContaining({ ioasid: mirror.ioasid, iova: MMAP_BASE, length: 2 * PAGE_SIZE }),
    ]);
  });

  it('flushIotlb is EIO when the vIOMMU reports a fault for the piotlb', async () => {
    let host!: FailWhen<HostKernelPort>;
    const s = await setup({ wrapHost: (port) => (host = failWhen(port)).port });
    const p = await s.mm.createProcess('a');
    await s.sva.bind(p.pid, s.a);
    // The host refuses the IOTLB invalidation: the vIOMMU reports it as a fault of the vPASID (no DMA access).
    host.fail = (method) => (method === 'invalidate' ? 'ENOMEM' : null);
    await expect(s.sva.flushIotlb(p.pid, MMAP_BASE, PAGE_SIZE)).rejects.toMatchObject({ errno: 'EIO' });
    expect(host.calls.filter((c) => c.method === 'invalidate').map((c) => c.injected)).toEqual(['ENOMEM']);
    expect(s.bed.viommu.faults().at(-1)).toMatchObject({ vrid: null, vpasid: V1, errno: 'ENOMEM' });
    host.fail = null;
    await expect(s.sva.flushIotlb(p.pid, MMAP_BASE, PAGE_SIZE)).resolves.toBeUndefined();
    expect(host.calls.filter((c) => c.method === 'invalidate').map((c) => c.injected)).toEqual(['ENOMEM', null]);
  });
});
