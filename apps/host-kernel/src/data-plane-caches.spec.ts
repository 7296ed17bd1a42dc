// The data plane remembers answers between descriptors: the IOMMU's last route (attach-table.ts), the IOTLB's tag
// store (iotlb-index.ts), the portal of a VFIO device (cpu/portal.ts). Each must see every control-plane change at
// the next descriptor, exactly as a path that looks everything up again: a warm loop of ENQCMDs, then the change.
import { CompletionStatus } from '@app/shared/dsa/dsa.constants';
import { unmapPage } from '@app/shared/x86/map';
import { IA32_PASID_VALID } from '@app/shared/x86/msr.constants';
import { bindGuestSva, bytes, guestRecord, guestWorld, type GuestWorld, memmove } from './data-plane.testing';
import { DSA0, errnoOf, newKernel, PAGE, type TestKernel } from './kernel.testing';

const SRC = 0x40_0000;
const DST = 0x40_1000;
const DONE = 0x40_2000;
const VPASID = 7;

interface World {
  k: TestKernel;
  w: GuestWorld;
  ppasid: number;
  src: number;
  dst: number;
  done: number;
  /** ENQCMD of the memmove, then one engine step; the ENQCMD's answer. */
  run(): string;
}

function warm(): World {
  const k = newKernel({ engine: { paused: true } });
  const w = guestWorld(k, { bdf: DSA0, ramPages: 32 });
  const [src, dst, done] = [w.allocPage(), w.allocPage(), w.allocPage()];
  w.map(SRC, src);
  w.map(DST, dst);
  w.map(DONE, done);
  const ppasid = bindGuestSva(k, w, VPASID);
  k.writeGuestMemory(w.pid, w.vm, src, bytes(PAGE, 5));
  const engine = k.accelerators.accelerator(DSA0);
  const run = (): string => {
    const r = k.vcpuEnqcmd(w.pid, w.vm, 0, w.dev, memmove(SRC, DST, PAGE, DONE));
    if (r.result === 'accepted') expect(engine.step()).toBe(true);
    return r.result === 'gp' ? `gp:${r.reason}` : r.result;
  };
  for (let i = 0; i < 50; i++) expect(run()).toBe('accepted');
  expect(guestRecord(k, w, done)).toMatchObject({ status: CompletionStatus.success, bytesCompleted: PAGE });
  return { k, w, ppasid, src, dst, done, run };
}

describe('data-plane caches see every control-plane change at the next descriptor', () => {
  it('DISALLOW: the next descriptor faults no-route (no record: it would fault too); ALLOW again: it runs', () => {
    const { k, w, ppasid, done, run } = warm();
    k.disallowIoasid(w.pid, w.dev, { ioasidFd: w.fd, ioasid: ppasid });
    k.writeGuestMemory(w.pid, w.vm, done, Buffer.alloc(32));
    const faults = k.faults().length;
    expect(run()).toBe('accepted'); // KVM still translates the vPASID: the device's DMA is refused
    // The source read faults; so does the completion record's write, which is then dropped.
    expect(k.faults().slice(faults)).toEqual([
      expect.objectContaining({ pasid: ppasid, reason: 'no-route', address: SRC, access: 'read' }),
      expect.objectContaining({ pasid: ppasid, reason: 'no-route', address: DONE, access: 'write' }),
    ]);
    expect(guestRecord(k, w, done).status).toBe(0);
    k.allowIoasid(w.pid, w.dev, { ioasidFd: w.fd, ioasid: ppasid, mode: 'pasid' });
    expect(run()).toBe('accepted');
    expect(guestRecord(k, w, done)).toMatchObject({ status: CompletionStatus.success, bytesCompleted: PAGE });
  });

  it('UNMAP_PASID, then WRMSR: #GP exactly as a cold ENQCMD; MAP_PASID again: accepted', () => {
    const { k, w, ppasid, run } = warm();
    k.unmapPasid(w.pid, w.vm, VPASID);
    expect(run()).toBe('gp:vpasid-unmapped');
    k.mapPasid(w.pid, w.vm, { vpasid: VPASID, ioasidFd: w.fd, ioasid: ppasid });
    expect(run()).toBe('accepted');
    k.vcpuWrmsr(w.pid, w.vm, 0, 'IA32_PASID', VPASID); // valid bit clear
    expect(run()).toBe('gp:ia32-pasid-invalid');
    k.vcpuWrmsr(w.pid, w.vm, 0, 'IA32_PASID', (IA32_PASID_VALID | 8) >>> 0); // a vPASID never mapped
    expect(run()).toBe('gp:vpasid-unmapped');
  });

  it('a stale IOTLB entry is used until INVALIDATE: the guest remaps DST without one, the bytes go to the old page', () => {
    const { k, w, dst, done, run } = warm();
    const other = w.allocPage();
    expect(unmapPage(w.mem, w.cr3, DST)).toBe(true); // rewrites the PTE in guest memory; no invalidation
    w.map(DST, other);
    k.writeGuestMemory(w.pid, w.vm, dst, Buffer.alloc(PAGE));
    expect(run()).toBe('accepted');
    expect(k.readGuestMemory(w.pid, w.vm, dst, PAGE)).toEqual(bytes(PAGE, 5));
    expect(k.readGuestMemory(w.pid, w.vm, other, PAGE)).toEqual(Buffer.alloc(PAGE));
    const { ppasid } = warmIds(k, w);
    k.invalidate(w.pid, w.fd, ppasid);
    expect(run()).toBe('accepted');
    expect(k.readGuestMemory(w.pid, w.vm, other, PAGE)).toEqual(bytes(PAGE, 5));
    expect(guestRecord(k, w, done).status).toBe(CompletionStatus.success);
  });

  it('DESTROY of the nested ioasid blocks at once; closing the device fd is EBADF; process exit is ESRCH', () => {
    const { k, w, ppasid, run } = warm();
    k.unmapPasid(w.pid, w.vm, VPASID);
    k.disallowIoasid(w.pid, w.dev, { ioasidFd: w.fd, ioasid: ppasid });
    k.destroy(w.pid, w.fd, ppasid);
    expect(run()).toBe('gp:vpasid-unmapped');
    k.closeFd(w.pid, w.dev);
    expect(errnoOf(run)).toBe('EBADF');
    k.killProcess(w.pid, 'test');
    expect(errnoOf(run)).toBe('ESRCH');
  });
});

/** The nested ioasid the world's vPASID maps to, as KVM sees it now. */
function warmIds(k: TestKernel, w: GuestWorld): { ppasid: number } {
  const ppasid = k.translateVpasid(w.pid, w.vm, VPASID);
  if (ppasid === null) throw new Error('vPASID not mapped');
  return { ppasid };
}
