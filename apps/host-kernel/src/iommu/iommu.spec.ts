import { PTE_PS } from '@app/shared/x86/x86.constants';
import { findLeaf } from '@app/shared/x86/map';
import { decodePte, encodePte, pageTableIndexes } from '@app/shared/x86/pte';
import { bindGuestSva, guestWorld, type GuestWorld } from '../data-plane.testing';
import { KernelEvent } from '../kernel';
import { DSA0, DSA1, newKernel, PAGE, type TestKernel } from '../kernel.testing';
import { PhysicalMemory } from '../memory/physical-memory';
import { Iommu } from './iommu';
import { FAULT_REASONS, type FaultReason } from './iommu.constants';

/** Reasons the host IOMMU cannot produce in this model, and why. */
const UNREACHABLE: Record<string, string> = {
  'pasid-too-large': 'a context-entry check: the host model has no context entries (the vIOMMU reports these)',
  'rid-pasid-error': 'idem',
  'pasid-dir-access-error': 'the host PASID table is the attach table, not memory (the vIOMMU reports these)',
  'pasid-dir-not-present': 'idem',
  'pasid-dir-reserved': 'idem',
  'pasid-table-access-error': 'idem',
  'pasid-entry-not-present': 'a missing route is reported as no-route (same code 0x59)',
  'pasid-entry-reserved': 'idem',
  'pasid-entry-invalid': 'BIND_PGTBL refuses a nested table over a non-iova parent',
  'fl-table-access-error': 'a first-stage table read fails only through its second-stage cause (sl-table-not-present)',
  'fl-root-access-error': 'idem',
};

/** Where the PDE of va sits in the guest's table (walked by hand). */
function pdeAddress(w: GuestWorld, va: number): number {
  const [i4, i3, i2] = pageTableIndexes(va);
  const pdpt = decodePte(w.mem.readU64(w.cr3 + i4 * 8)!).address;
  const pd = decodePte(w.mem.readU64(pdpt + i3 * 8)!).address;
  return pd + i2 * 8;
}

/**
 * One VMM with: a GPA ioasid on DSA0's RID (32 pages RW, plus a read-only and a write-only page), a nested ioasid
 * on DSA0 with a guest table full of traps, a nested ioasid whose root is outside RAM, one over a read-only view
 * of RAM (A/D updates fail), and one on DSA1 that was destroyed.
 */
function trapWorld(k: TestKernel) {
  const w = guestWorld(k, { ramPages: 32 });
  const extra = k.mmap(w.pid, 2 * PAGE);
  k.writeMemory(w.pid, extra, Buffer.alloc(2 * PAGE, 0x5a));
  k.map(w.pid, w.fd, w.gpa, { iova: 0x100000, hva: extra, length: PAGE, read: true, write: false });
  k.map(w.pid, w.fd, w.gpa, { iova: 0x200000, hva: extra + PAGE, length: PAGE, read: false, write: true });
  const data = w.allocPage();
  w.map(0x400000, data);
  w.map(0x401000, w.allocPage(), { writable: false });
  w.map(0x402000, w.allocPage());
  w.map(0x403000, 0x800000); // GPA outside RAM
  w.map(0x405000, w.allocPage(), { user: false }); // a guest-kernel page
  w.map(0x40000000, w.allocPage()); // its PDE becomes a large page below
  const reserved = findLeaf(w.mem, w.cr3, 0x402000);
  w.mem.writeU64(reserved.entryAddress, encodePte({ present: true, writable: true, address: 2 ** 50 })); // bits 51:48
  const pde = pdeAddress(w, 0x40000000);
  w.mem.writeU64(pde, w.mem.readU64(pde)! | PTE_PS);
  const nested = bindGuestSva(k, w, 5);
  const lost = k.alloc(w.pid, w.fd);
  k.bindPgtbl(w.pid, w.fd, lost, { kind: 'nested', parent: w.gpa, root: 0x900000 });
  k.allowIoasid(w.pid, w.dev, { ioasidFd: w.fd, ioasid: lost, mode: 'pasid' });
  // A read-only view of RAM, and a separate guest table (its A bits still clear) walked only through it.
  const roRam = k.alloc(w.pid, w.fd);
  k.bindPgtbl(w.pid, w.fd, roRam, { kind: 'iova' });
  k.map(w.pid, w.fd, roRam, { iova: 0, hva: w.ram, length: 32 * PAGE, read: true, write: false });
  const cr3b = w.allocPage();
  w.map(0x400000, data, {}, cr3b);
  const noAd = k.alloc(w.pid, w.fd);
  k.bindPgtbl(w.pid, w.fd, noAd, { kind: 'nested', parent: roRam, root: cr3b });
  k.allowIoasid(w.pid, w.dev, { ioasidFd: w.fd, ioasid: noAd, mode: 'pasid' });
  const dev1 = k.openDevice(w.pid, DSA1);
  const doomed = k.alloc(w.pid, w.fd);
  k.bindPgtbl(w.pid, w.fd, doomed, { kind: 'nested', parent: w.gpa, root: w.cr3 });
  k.allowIoasid(w.pid, dev1, { ioasidFd: w.fd, ioasid: doomed, mode: 'pasid' });
  k.destroy(w.pid, w.fd, doomed);
  return { w, extra, nested, lost, noAd, doomed };
}

describe('IOMMU faults', () => {
  it('produces every reachable VT-d fault reason, logs and reports it to the owner, and moves no byte', () => {
    const events: KernelEvent[] = [];
    const k = newKernel({ engine: { paused: true }, onEvent: (e) => events.push(e) });
    const { w, extra, nested, lost, noAd, doomed } = trapWorld(k);
    const fill = (n: number) => Buffer.alloc(n, 0xee);
    // [bdf, pasid, address, length, write, expected reason]; writes start on a good page where one exists
    const trials: Array<[string, number | null, number, number, boolean, FaultReason]> = [
      [DSA1, 77, 0, 8, true, 'no-route'],
      [DSA1, doomed, 0x400000, 8, true, 'translation-blocked'],
      [DSA0, null, 2 ** 48, 8, true, 'address-beyond-width'],
      [DSA0, null, 32 * PAGE - 8, 16, true, 'sl-not-present'],
      [DSA0, null, 0x100000, 8, true, 'sl-write-denied'],
      [DSA0, null, 0x200000, 8, false, 'sl-read-denied'],
      [DSA0, nested, 0x400000 + PAGE - 8, 16, true, 'fl-write-denied'],
      [DSA0, nested, 0x402000, 8, false, 'fl-reserved'],
      [DSA0, nested, 0x403000, 8, false, 'sl-not-present'],
      [DSA0, nested, 0x404000, 8, true, 'fl-not-present'],
      [DSA0, nested, 0x40000000, 8, false, 'fl-large-page'],
      [DSA0, nested, 2 ** 47, 8, false, 'fl-non-canonical'],
      [DSA0, nested, 0x405000, 8, false, 'fl-privilege-denied'],
      [DSA0, lost, 0x400000, 8, false, 'sl-table-not-present'],
      [DSA0, noAd, 0x400000, 8, false, 'fl-ad-update-failed'],
    ];
    const seen = new Set<string>();
    for (const [bdf, pasid, address, length, write, reason] of trials) {
      const r = k.deviceDma(bdf, { pasid, address, length, write, data: write ? fill(length) : undefined });
      expect(r).toMatchObject({ ok: false, fault: { bdf, pasid, access: write ? 'write' : 'read', reason, code: FAULT_REASONS[reason].code } });
      expect(k.faults().at(-1)).toEqual((r as { fault: unknown }).fault);
      expect(events.at(-1)).toMatchObject({ kind: 'fault', pid: w.pid, bdf, reason });
      seen.add(reason);
    }
    // 0xee was never stored anywhere: finding none in RAM or the extra pages means no faulting write moved a byte
    expect(k.readMemory(w.pid, w.ram, 32 * PAGE).includes(0xee)).toBe(false);
    expect(k.readMemory(w.pid, extra, 2 * PAGE)).toEqual(Buffer.alloc(2 * PAGE, 0x5a));
    const reachable = Object.keys(FAULT_REASONS).filter((r) => !(r in UNREACHABLE));
    expect([...seen].sort()).toEqual(reachable.sort());
  });
});

describe('fault log', () => {
  it('is a bounded ring: oldest first, the oldest overwritten when full', () => {
    const iommu = new Iommu({ memory: new PhysicalMemory(1), faultLogCapacity: 3 });
    iommu.addDevice(DSA0);
    for (let i = 0; i < 5; i++) iommu.access(DSA0, 10 + i, i * PAGE, 4, false);
    expect(iommu.faults().map((f) => f.pasid)).toEqual([12, 13, 14]);
    expect(iommu.overwritten).toBe(2);
    iommu.faults()[0].pasid = 99; // a copy
    expect(iommu.faults()[0].pasid).toBe(12);
  });
});

describe('IOTLB flushes wired to the control plane', () => {
  const read = (k: TestKernel, bdf: string, pasid: number | null, address: number) => k.deviceDma(bdf, { pasid, address, length: 8, write: false });

  it('UNMAP flushes the table and every nested child; a stale hit never survives an unmap', () => {
    const k = newKernel({ engine: { paused: true } });
    const w = guestWorld(k, { ramPages: 8 });
    k.writeGuestMemory(w.pid, w.vm, 3 * PAGE, Buffer.from('gpa-data'));
    const passThrough = bindGuestSva(k, w, 4, null); // nested without root: the PASID sees GPA space
    expect(read(k, DSA0, null, 3 * PAGE)).toEqual({ ok: true, data: Buffer.from('gpa-data') });
    expect(read(k, DSA0, passThrough, 3 * PAGE)).toEqual({ ok: true, data: Buffer.from('gpa-data') });
    expect(k.iommu.iotlb.stats.entries).toBe(2);
    k.unmap(w.pid, w.fd, w.gpa, { all: true });
    expect(k.iommu.iotlb.stats.entries).toBe(0);
    expect(read(k, DSA0, null, 3 * PAGE)).toMatchObject({ ok: false, fault: { reason: 'sl-not-present' } });
    expect(read(k, DSA0, passThrough, 3 * PAGE)).toMatchObject({ ok: false, fault: { reason: 'sl-not-present' } });
  });

  it('a guest table change is invisible until INVALIDATE; a range invalidation flushes only its pages', () => {
    const k = newKernel({ engine: { paused: true } });
    const w = guestWorld(k, { ramPages: 16 });
    const [a, b, a2, b2] = [w.allocPage(), w.allocPage(), w.allocPage(), w.allocPage()];
    for (const [gpa, text] of [[a, 'old-a'], [b, 'old-b'], [a2, 'new-a'], [b2, 'new-b']] as const) k.writeGuestMemory(w.pid, w.vm, gpa, Buffer.from(text));
    w.map(0x10000, a);
    w.map(0x11000, b);
    const sva = bindGuestSva(k, w, 8);
    const text = (va: number) => {
      const r = k.deviceDma(DSA0, { pasid: sva, address: va, length: 5, write: false });
      return r.ok ? r.data?.toString() : r.fault.reason;
    };
    expect([text(0x10000), text(0x11000)]).toEqual(['old-a', 'old-b']);
    // the guest repoints both PTEs and does not invalidate
    w.mem.writeU64(findLeaf(w.mem, w.cr3, 0x10000).entryAddress, encodePte({ present: true, writable: true, user: true, address: a2 }));
    w.mem.writeU64(findLeaf(w.mem, w.cr3, 0x11000).entryAddress, encodePte({ present: true, writable: true, user: true, address: b2 }));
    expect([text(0x10000), text(0x11000)]).toEqual(['old-a', 'old-b']);
    k.invalidate(w.pid, w.fd, sva, { iova: 0x10000, length: PAGE });
    expect([text(0x10000), text(0x11000)]).toEqual(['new-a', 'old-b']);
    k.invalidate(w.pid, w.fd, sva);
    expect([text(0x10000), text(0x11000)]).toEqual(['new-a', 'new-b']);
  });

  it('DISALLOW flushes the route’s cached translations (PASID teardown)', () => {
    const k = newKernel({ engine: { paused: true } });
    const w = guestWorld(k, { ramPages: 8 });
    const sva = bindGuestSva(k, w, 8, null);
    read(k, DSA0, sva, 0);
    expect(k.iommu.iotlb.lookup(k.route(DSA0, sva)!.id, 0)).not.toBeNull();
    const id = k.route(DSA0, sva)!.id;
    k.unmapPasid(w.pid, w.vm, 8);
    k.disallowIoasid(w.pid, w.dev, { ioasidFd: w.fd, ioasid: sva });
    expect(k.iommu.iotlb.lookup(id, 0)).toBeNull();
    expect(read(k, DSA0, sva, 0)).toMatchObject({ ok: false, fault: { reason: 'no-route' } });
  });
});
