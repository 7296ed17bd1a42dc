import { KernelError } from '@app/shared/errno';
import { bindGuestSva, guestRecord, guestWorld } from '../data-plane.testing';
import { FaultInjector } from '../fault-injection';
import { DSA0, DSA1, newKernel, PAGE, type TestKernel } from '../kernel.testing';

/** A guest SVA PASID allowed on DSA0 only, with a descriptor tagged with it queued on DSA1 (same VMM). */
function strayWork(k: TestKernel) {
  const w = guestWorld(k);
  const done = w.allocPage();
  w.map(0x400000, done);
  const ppasid = bindGuestSva(k, w, 5);
  const dev1 = k.openDevice(w.pid, DSA1);
  expect(k.vcpuEnqcmd(w.pid, w.vm, 0, dev1, { op: 'fill', dst: 0x400100, length: 16, pattern: 0x41, completion: 0x400000 })).toEqual({ result: 'accepted' });
  expect(k.accelerators.accelerator(DSA1).queuedFor(ppasid)).toBe(1);
  k.unmapPasid(w.pid, w.vm, 5);
  k.disallowIoasid(w.pid, w.dev, { ioasidFd: w.fd, ioasid: ppasid });
  return { w, ppasid, done };
}

describe('a pPASID returns to the pool only once no device has work tagged with it', () => {
  it('work queued on a device the PASID was never allowed on is aborted before the PASID is freed', () => {
    const k = newKernel({ engine: { paused: true } });
    const { w, ppasid, done } = strayWork(k);
    k.destroy(w.pid, w.fd, ppasid);
    expect(k.pasidInfo(ppasid).state).toBe('free');
    const dsa1 = k.accelerators.accelerator(DSA1);
    expect(dsa1.queuedFor(ppasid)).toBe(0);
    expect(dsa1.stats).toMatchObject({ aborted: 1, completed: 0 });
    // The abort's record write has no route on DSA1 (the PASID never had one there): it faults, writes nothing.
    expect(k.faults()).toEqual([expect.objectContaining({ bdf: DSA1, pasid: ppasid, access: 'write', reason: 'no-route' })]);
    expect(guestRecord(k, w, done).status).toBe(0);

    // The next owner of the id gets a clean PASID: nothing runs under its route.
    const { pid } = k.createProcess('next');
    const hva = k.mmap(pid, PAGE);
    const fd = k.openIoasid(pid);
    expect(k.alloc(pid, fd)).toBe(ppasid);
    k.bindPgtbl(pid, fd, ppasid, { kind: 'mm' });
    k.writeMemory(pid, hva, Buffer.from('mine'));
    expect(dsa1.step()).toBe(false);
    expect(k.readMemory(pid, hva, 4).toString()).toBe('mine');
  });

  it('the drain happens only when the call commits (fail_nth on DESTROY leaves the work queued and the PASID allocated)', () => {
    const faults = new FaultInjector();
    const k = newKernel({ engine: { paused: true }, faults });
    const { w, ppasid } = strayWork(k);
    const dsa1 = k.accelerators.accelerator(DSA1);
    let failures = 0;
    for (let nth = 1; nth < 1000; nth++) {
      const before = k.snapshot();
      faults.arm(nth);
      let error: unknown;
      try {
        k.destroy(w.pid, w.fd, ppasid);
      } catch (err) {
        error = err;
      }
      faults.disarm();
      if (faults.fired === null) {
        // Step nth was never reached: the call ran every step and committed.
        expect(error).toBeUndefined();
        expect(failures).toBe(faults.steps);
        break;
      }
      // The failure is the injected one, at step nth, and nothing of the call survived it.
      expect(error).toBeInstanceOf(KernelError);
      expect((error as KernelError).errno).toBe('ENOMEM');
      expect((error as KernelError).message).toContain(`step ${nth} (${faults.fired})`);
      failures++;
      expect(k.snapshot()).toEqual(before);
      expect(dsa1.queuedFor(ppasid)).toBe(1);
      expect(k.pasidInfo(ppasid).state).toBe('allocated');
    }
    expect(failures).toBeGreaterThan(0);
    expect(k.pasidInfo(ppasid).state).toBe('free');
    expect(dsa1.queuedFor(ppasid)).toBe(0);
    expect(k.accelerators.accelerator(DSA0).stats.queued).toBe(0);
  });
});
