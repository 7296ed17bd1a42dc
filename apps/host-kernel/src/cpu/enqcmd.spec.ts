import { CompletionStatus } from '@app/shared/dsa/dsa.constants';
import { findLeaf } from '@app/shared/x86/map';
import { encodePte } from '@app/shared/x86/pte';
import { IA32_PASID_VALID } from '@app/shared/x86/msr.constants';
import { bindGuestSva, bytes, guestRecord, guestWorld, hostSva, memmove } from '../data-plane.testing';
import { DSA0, DSA1, errnoOf, expectFails, newKernel, NOPASID, PAGE, type TestKernel } from '../kernel.testing';

const stalled = (): TestKernel => newKernel({ engine: { paused: true } });

/** A guest process's buffers: GVA 0x400000 src, 0x401000 dst, 0x402000 completion, each on its own GPA page. */
function guestBuffers(w: ReturnType<typeof guestWorld>) {
  const src = w.allocPage();
  const dst = w.allocPage();
  const done = w.allocPage();
  w.map(0x400000, src);
  w.map(0x401000, dst);
  w.map(0x402000, done);
  return { src, dst, done };
}

describe('nested translation: ENQCMD from a vCPU, DMA by GVA', () => {
  it('a memmove by GVA lands at the host frames behind the guest pages; PTE changes need INVALIDATE', () => {
    const k = stalled();
    const w = guestWorld(k);
    const g = guestBuffers(w);
    const ppasid = bindGuestSva(k, w, 7);
    const payload = bytes(300);
    k.writeGuestMemory(w.pid, w.vm, g.src, payload);
    const move = memmove(0x400000, 0x401000 + 64, 300, 0x402000);
    expect(k.vcpuEnqcmd(w.pid, w.vm, 0, w.dev, move)).toEqual({ result: 'accepted' });
    expect(k.accelerators.accelerator(DSA0).queuedFor(ppasid)).toBe(1); // tagged with the pPASID, not vPASID 7
    k.accelerators.accelerator(DSA0).step();
    expect(k.memory.read(w.hpaOf(g.dst) + 64, 300)).toEqual(payload);
    expect(guestRecord(k, w, g.done)).toMatchObject({ status: CompletionStatus.success, bytesCompleted: 300 });

    // The guest repoints the dst page at another GPA page without invalidating: the IOTLB keeps the old one.
    const moved = w.allocPage();
    w.mem.writeU64(findLeaf(w.mem, w.cr3, 0x401000).entryAddress, encodePte({ present: true, writable: true, user: true, address: moved }));
    const second = bytes(300, 9);
    k.writeGuestMemory(w.pid, w.vm, g.src, second);
    k.vcpuEnqcmd(w.pid, w.vm, 0, w.dev, move);
    k.accelerators.accelerator(DSA0).step();
    expect(k.memory.read(w.hpaOf(g.dst) + 64, 300)).toEqual(second);
    expect(k.readGuestMemory(w.pid, w.vm, moved, PAGE)).toEqual(Buffer.alloc(PAGE));

    k.invalidate(w.pid, w.fd, ppasid, { iova: 0x401000, length: PAGE });
    const third = bytes(300, 77);
    k.writeGuestMemory(w.pid, w.vm, g.src, third);
    k.vcpuEnqcmd(w.pid, w.vm, 0, w.dev, move);
    k.accelerators.accelerator(DSA0).step();
    expect(k.memory.read(w.hpaOf(moved) + 64, 300)).toEqual(third);
    expect(k.memory.read(w.hpaOf(g.dst) + 64, 300)).toEqual(second);
    expect(k.faults()).toEqual([]);
  });

  it('two VMs using the same vPASID reach different pPASIDs and stay in their own memory', () => {
    const k = stalled();
    const a = guestWorld(k, { bdf: DSA0, comm: 'vmm/a' });
    const b = guestWorld(k, { bdf: DSA1, comm: 'vmm/b' });
    const ga = guestBuffers(a);
    const gb = guestBuffers(b);
    const pa = bindGuestSva(k, a, 3);
    const pb = bindGuestSva(k, b, 3);
    expect(pa).not.toBe(pb);
    k.writeGuestMemory(a.pid, a.vm, ga.src, Buffer.from('only-in-a'));
    k.writeGuestMemory(b.pid, b.vm, gb.src, Buffer.from('only-in-b'));
    for (const [w, bdf] of [[a, DSA0], [b, DSA1]] as const) {
      expect(k.vcpuEnqcmd(w.pid, w.vm, 0, w.dev, memmove(0x400000, 0x401000, 9, 0x402000)).result).toBe('accepted');
      k.accelerators.accelerator(bdf).step();
    }
    expect(k.readGuestMemory(a.pid, a.vm, ga.dst, 9).toString()).toBe('only-in-a');
    expect(k.readGuestMemory(b.pid, b.vm, gb.dst, 9).toString()).toBe('only-in-b');
    expect(a.hpaOf(ga.dst)).not.toBe(b.hpaOf(gb.dst));
    // A's guest reaching past its RAM finds nothing of B's: the GPA is not in A's parent table.
    a.map(0x403000, 64 * PAGE + gb.src); // beyond A's 64 pages of RAM
    k.vcpuEnqcmd(a.pid, a.vm, 0, a.dev, memmove(0x403000, 0x401000, 9, 0x402000));
    k.accelerators.accelerator(DSA0).step();
    expect(guestRecord(k, a, ga.done)).toMatchObject({ status: CompletionStatus.pageFault, faultAddress: 0x403000 });
    expect(k.readGuestMemory(a.pid, a.vm, ga.dst, 9).toString()).toBe('only-in-a');
    // B's pPASID on A's device has no route.
    expect(k.deviceDma(DSA0, { pasid: pb, address: 0x400000, length: 9, write: false })).toMatchObject({ ok: false, fault: { reason: 'no-route' } });
  });
});

describe('ENQCMD outcomes', () => {
  it('vCPU: #GP on invalid IA32_PASID (no exit), #GP after a VM exit for an unmapped vPASID, ZF=0 and ZF=1', () => {
    const k = stalled();
    const w = guestWorld(k);
    const noop = { op: 'noop' as const, completion: 0x2000 };
    expect(k.vcpuEnqcmd(w.pid, w.vm, 0, w.dev, noop)).toEqual({ result: 'gp', reason: 'ia32-pasid-invalid' });
    k.vcpuWrmsr(w.pid, w.vm, 0, 'IA32_PASID', 5); // PASID 5 but valid bit clear
    expect(k.vcpuEnqcmd(w.pid, w.vm, 0, w.dev, noop)).toEqual({ result: 'gp', reason: 'ia32-pasid-invalid' });
    k.vcpuWrmsr(w.pid, w.vm, 0, 'IA32_PASID', (IA32_PASID_VALID | 5) >>> 0);
    expect(k.vcpuEnqcmd(w.pid, w.vm, 0, w.dev, noop)).toEqual({ result: 'gp', reason: 'vpasid-unmapped' });
    const ppasid = bindGuestSva(k, w, 5);
    const dev = k.accelerators.accelerator(DSA0);
    for (let i = 0; i < dev.wqDepth; i++) expect(k.vcpuEnqcmd(w.pid, w.vm, 0, w.dev, noop)).toEqual({ result: 'accepted' });
    expect(k.vcpuEnqcmd(w.pid, w.vm, 0, w.dev, noop)).toEqual({ result: 'retry', reason: 'queue-full' });
    expect(dev.queuedFor(ppasid)).toBe(dev.wqDepth);
    dev.step();
    expect(k.vcpuEnqcmd(w.pid, w.vm, 0, w.dev, noop)).toEqual({ result: 'accepted' });
    // Once the ioasid is destroyed the VM's entry stops translating: exit → #GP again.
    k.destroy(w.pid, w.fd, ppasid);
    expect(k.vcpuEnqcmd(w.pid, w.vm, 0, w.dev, noop)).toEqual({ result: 'gp', reason: 'vpasid-unmapped' });
    expect(dev.queuedFor(ppasid)).toBe(0);
  });

  it('vCPU with PASID translation disabled: #GP, the guest PASID never reaches the device as a host PASID', () => {
    const k = stalled();
    const w = guestWorld(k);
    const vmm = hostSva(k, DSA1); // a host SVA PASID the guest must not be able to name
    k.setPasidTranslation(w.pid, w.vm, false);
    for (const pasid of [1234, vmm.ppasid]) {
      k.vcpuWrmsr(w.pid, w.vm, 0, 'IA32_PASID', (IA32_PASID_VALID | pasid) >>> 0);
      expect(k.vcpuEnqcmd(w.pid, w.vm, 0, w.dev, { op: 'noop', completion: 0 })).toEqual({ result: 'gp', reason: 'pasid-translation-disabled' });
      expect(k.accelerators.accelerator(DSA0).queuedFor(pasid)).toBe(0);
    }
    expect(k.accelerators.accelerator(DSA0).stats.queued).toBe(0);
    // IA32_PASID invalid is still the #GP without exit, checked first.
    k.vcpuWrmsr(w.pid, w.vm, 0, 'IA32_PASID', 0);
    expect(k.vcpuEnqcmd(w.pid, w.vm, 0, w.dev, { op: 'noop', completion: 0 })).toEqual({ result: 'gp', reason: 'ia32-pasid-invalid' });
  });

  it('host process: #GP when IA32_PASID is invalid, else its PASID untranslated; ZF=1 when the queue is full', () => {
    const k = stalled();
    const a = hostSva(k, DSA0);
    const noop = { op: 'noop' as const, completion: a.buf };
    k.wrmsr(a.pid, 'IA32_PASID', a.ppasid); // valid bit clear
    expect(k.enqcmd(a.pid, a.dev, noop)).toEqual({ result: 'gp', reason: 'ia32-pasid-invalid' });
    k.wrmsr(a.pid, 'IA32_PASID', IA32_PASID_VALID); // valid, PASID 0 (RID_PASID, never handed out)
    expect(k.enqcmd(a.pid, a.dev, noop)).toEqual({ result: 'gp', reason: 'ia32-pasid-invalid' });
    k.wrmsr(a.pid, 'IA32_PASID', (IA32_PASID_VALID | a.ppasid) >>> 0);
    const dev = k.accelerators.accelerator(DSA0);
    for (let i = 0; i < dev.wqDepth; i++) expect(k.enqcmd(a.pid, a.dev, noop).result).toBe('accepted');
    expect(k.enqcmd(a.pid, a.dev, noop)).toEqual({ result: 'retry', reason: 'queue-full' });
    expect(dev.stats).toMatchObject({ queued: dev.wqDepth, retried: 1 });
  });

  it('bad calls fail with an errno before anything is queued', () => {
    const k = stalled();
    const a = hostSva(k, DSA0);
    const w = guestWorld(k, { bdf: DSA1 });
    bindGuestSva(k, w, 5);
    const noPasidDev = k.openDevice(a.pid, NOPASID);
    const noop = { op: 'noop' as const, completion: a.buf };
    const queued = () => [DSA0, DSA1, NOPASID].map((bdf) => k.accelerators.accelerator(bdf).stats.queued);
    const cases: Array<[() => unknown, string]> = [
      [() => k.enqcmd(a.pid, a.fd, noop), 'EBADF'], // an ioasid fd, not a device fd
      [() => k.enqcmd(a.pid, 42, noop), 'EBADF'], // not open
      [() => k.enqcmd(a.pid, noPasidDev, noop), 'EOPNOTSUPP'],
      [() => k.enqcmd(a.pid, a.dev, { op: 'memmove', src: 0, length: 8, completion: a.buf }), 'EINVAL'], // no dst
      [() => k.enqcmd(a.pid, a.dev, { op: 'xor' as 'noop', completion: a.buf }), 'EINVAL'],
      [() => k.enqcmd(a.pid, a.dev, { op: 'fill', dst: 0, length: 8, pattern: -1, completion: a.buf }), 'EINVAL'],
      [() => k.enqcmd(9999, a.dev, noop), 'ESRCH'],
      [() => k.vcpuEnqcmd(w.pid, w.vm, 3, w.dev, noop), 'ENOENT'],
      [() => k.vcpuEnqcmd(w.pid, w.dev, 0, w.dev, noop), 'EBADF'],
      [() => k.vcpuEnqcmd(w.pid, w.vm, 0, w.vm, noop), 'EBADF'],
    ];
    for (const [call, errno] of cases) {
      const before = queued();
      expectFails(k, call, errno);
      expect(queued()).toEqual(before);
    }
    expect(errnoOf(() => k.enqcmd(a.pid, a.dev, noop))).toBeUndefined();
  });
});

describe('ENQCMDS (supervisor mode: the PASID comes from the descriptor)', () => {
  it('vCPU: ignores IA32_PASID, translates the descriptor PASID through the VM table, a miss exits → #GP', () => {
    const k = stalled();
    const w = guestWorld(k);
    const noop = { op: 'noop' as const, completion: 0x2000 };
    const dev = k.accelerators.accelerator(DSA0);
    // IA32_PASID is left invalid: ENQCMD would #GP, ENQCMDS does not read it.
    expect(k.vcpuEnqcmds(w.pid, w.vm, 0, w.dev, noop, 9, true)).toEqual({ result: 'gp', reason: 'vpasid-unmapped' });
    const ppasid = bindGuestSva(k, w, 9);
    k.vcpuWrmsr(w.pid, w.vm, 0, 'IA32_PASID', 0);
    expect(k.vcpuEnqcmds(w.pid, w.vm, 0, w.dev, noop, 9, true)).toEqual({ result: 'accepted' });
    expect(dev.queuedFor(ppasid)).toBe(1);
    expect(dev.queuedFor(9)).toBe(0);
    expect(errnoOf(() => k.vcpuEnqcmds(w.pid, w.vm, 0, w.dev, noop, 1 << 20, false))).toBe('EINVAL');
    expect(errnoOf(() => k.vcpuEnqcmds(w.pid, w.vm, 7, w.dev, noop, 9, false))).toBe('ENOENT');
    expect(dev.queuedFor(ppasid)).toBe(1);
  });

  it('vCPU with translation off: #GP, the descriptor PASID never reaches the device', () => {
    const k = stalled();
    const w = guestWorld(k);
    const vmm = hostSva(k, DSA1); // a host SVA PASID the guest must not be able to name
    k.setPasidTranslation(w.pid, w.vm, false);
    for (const pasid of [321, vmm.ppasid]) {
      expect(k.vcpuEnqcmds(w.pid, w.vm, 0, w.dev, { op: 'noop', completion: 0 }, pasid, false)).toEqual({ result: 'gp', reason: 'pasid-translation-disabled' });
    }
    expect(k.accelerators.accelerator(DSA0).stats.queued).toBe(0);
  });

  it('host process: ENQCMDS at CPL 3 is #GP and submits nothing', () => {
    const k = stalled();
    const a = hostSva(k, DSA0);
    expect(k.enqcmds(a.pid, a.dev, { op: 'noop', completion: a.buf })).toEqual({ result: 'gp', reason: 'cpl3' });
    expect(k.accelerators.accelerator(DSA0).stats.queued).toBe(0);
  });
});
