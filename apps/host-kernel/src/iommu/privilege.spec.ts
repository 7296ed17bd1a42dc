import { CompletionStatus } from '@app/shared/dsa/dsa.constants';
import { bindGuestSva, guestRecord, guestWorld } from '../data-plane.testing';
import { DSA0, errnoOf, newKernel, PAGE } from '../kernel.testing';
import { FAULT_REASONS } from './iommu.constants';

const PRIVILEGE = FAULT_REASONS['fl-privilege-denied'].code;

/** A guest with a user page (src + completion records) and a guest-kernel page (U/S = 0) behind vPASID 5. */
function world() {
  const k = newKernel({ engine: { paused: true } });
  const w = guestWorld(k);
  const user = w.allocPage();
  const kernel = w.allocPage();
  w.map(0x400000, user);
  w.map(0x500000, kernel, { user: false });
  const ppasid = bindGuestSva(k, w, 5);
  k.writeGuestMemory(w.pid, w.vm, kernel, Buffer.from('guest-kernel-data'));
  return { k, w, user, kernel, ppasid, dev: k.accelerators.accelerator(DSA0) };
}

describe('first-stage U/S: the request privilege (PR) is enforced', () => {
  it("a guest user's ENQCMD cannot read or write guest-kernel pages; the kernel's privileged ENQCMDS can", () => {
    const { k, w, user, kernel, ppasid, dev } = world();
    const steal = { op: 'memmove' as const, src: 0x500000, dst: 0x400100, length: 17, completion: 0x400000 };
    expect(k.vcpuEnqcmd(w.pid, w.vm, 0, w.dev, steal)).toEqual({ result: 'accepted' });
    dev.step();
    expect(guestRecord(k, w, user)).toMatchObject({ status: CompletionStatus.pageFault, faultAddress: 0x500000 });
    expect(k.readGuestMemory(w.pid, w.vm, user + 0x100, 17)).toEqual(Buffer.alloc(17));
    expect(k.faults().at(-1)).toEqual({ bdf: DSA0, pasid: ppasid, address: 0x500000, access: 'read', reason: 'fl-privilege-denied', code: PRIVILEGE });

    // ENQCMDS with the priv bit: a supervisor request, allowed (and its translation now sits in the IOTLB).
    expect(k.vcpuEnqcmds(w.pid, w.vm, 0, w.dev, { ...steal, completion: 0x400040 }, 5, true)).toEqual({ result: 'accepted' });
    dev.step();
    expect(guestRecord(k, w, user + 0x40)).toMatchObject({ status: CompletionStatus.success, bytesCompleted: 17 });
    expect(k.readGuestMemory(w.pid, w.vm, user + 0x100, 17).toString()).toBe('guest-kernel-data');

    // The cached supervisor translation does not serve a later user request: ENQCMD (and ENQCMDS without priv) fault.
    const scribble = { op: 'fill' as const, dst: 0x500000, length: 8, pattern: 0x41, completion: 0x400080 };
    expect(k.vcpuEnqcmd(w.pid, w.vm, 0, w.dev, scribble)).toEqual({ result: 'accepted' });
    expect(k.vcpuEnqcmds(w.pid, w.vm, 0, w.dev, { ...scribble, completion: 0x4000c0 }, 5, false)).toEqual({ result: 'accepted' });
    dev.step();
    dev.step();
    for (const at of [0x80, 0xc0]) expect(guestRecord(k, w, user + at)).toMatchObject({ status: CompletionStatus.pageFault, faultAddress: 0x500000 });
    expect(k.readGuestMemory(w.pid, w.vm, kernel, 17).toString()).toBe('guest-kernel-data');
  });

  it('raw admin DMA is a user request unless it asks for privilege (PR needs a PASID)', () => {
    const { k, ppasid, w } = world();
    expect(k.deviceDma(DSA0, { pasid: ppasid, address: 0x500000, length: 4, write: false })).toMatchObject({ ok: false, fault: { reason: 'fl-privilege-denied', code: PRIVILEGE } });
    expect(k.deviceDma(DSA0, { pasid: ppasid, address: 0x500000, length: 5, write: false, privileged: true })).toEqual({ ok: true, data: Buffer.from('guest') });
    expect(k.deviceDma(DSA0, { pasid: ppasid, address: 0x500000, length: 4, write: false, privileged: false })).toMatchObject({ ok: false, fault: { reason: 'fl-privilege-denied' } });
    expect(k.deviceDma(DSA0, { pasid: ppasid, address: 0x400000, length: 4, write: false })).toMatchObject({ ok: true });
    const faults = k.faults().length;
    expect(errnoOf(() => k.deviceDma(DSA0, { pasid: ppasid, address: 0x500000, length: 4, write: false, privileged: 1 as unknown as boolean }))).toBe('EINVAL');
    expect(k.faults()).toHaveLength(faults);
    // The RID route (GPA space, second stage only) has no U/S to check.
    expect(k.deviceDma(DSA0, { pasid: null, address: w.allocPage(), length: PAGE, write: true, data: Buffer.alloc(PAGE, 1) })).toEqual({ ok: true });
  });
});
