import { decodeCompletion } from '@app/shared/dsa/descriptor';
import { IA32_PASID_VALID } from '@app/shared/x86/msr.constants';
import { FaultInjector } from '../fault-injection';
import { DSA1, newKernel, PAGE } from '../kernel.testing';

const SECRET = Buffer.from('B-secret-B-secret-B-secret-B-sec');

describe('device reset on VFIO open and release (FLR: queued work is dropped, not run)', () => {
  it("a killed process's queued work never runs under the next opener's route", () => {
    const k = newKernel({ engine: { paused: true } });
    const acc = k.accelerators.accelerator(DSA1);
    // A: no ioasid at all, IA32_PASID names PASID 1 anyway; a fill aimed at the hva B will get.
    const a = k.createProcess('a').pid;
    const hvaA = k.mmap(a, PAGE);
    const devA = k.openDevice(a, DSA1);
    k.wrmsr(a, 'IA32_PASID', (IA32_PASID_VALID | 1) >>> 0);
    expect(k.enqcmd(a, devA, { op: 'fill', dst: hvaA, length: SECRET.length, pattern: 0x41414141, completion: hvaA + 2048 }).result).toBe('accepted');
    expect(acc.queuedFor(1)).toBe(1);
    k.killProcess(a, 'test');
    expect(acc.stats).toMatchObject({ queued: 0, aborted: 1 });

    // B: same hva, secret there, PASID 1 bound to its mm and allowed on the device.
    const b = k.createProcess('b').pid;
    const hvaB = k.mmap(b, PAGE);
    expect(hvaB).toBe(hvaA);
    k.writeMemory(b, hvaB, SECRET);
    const fd = k.openIoasid(b);
    expect(k.alloc(b, fd)).toBe(1);
    k.bindPgtbl(b, fd, 1, { kind: 'mm' });
    const devB = k.openDevice(b, DSA1);
    k.allowIoasid(b, devB, { ioasidFd: fd, ioasid: 1, mode: 'pasid' });
    expect(acc.step()).toBe(false);
    expect(k.readMemory(b, hvaB, SECRET.length)).toEqual(SECRET);
    // Dropped, not aborted by DMA: no completion record was written anywhere.
    expect(decodeCompletion(k.readMemory(b, hvaB + 2048, 32)).status).toBe(0);
    expect(k.faults()).toEqual([]);
  });

  it('open resets too, and the engine returns to its configured default', () => {
    const k = newKernel();
    const acc = k.accelerators.accelerator(DSA1);
    k.setEngine(DSA1, false);
    acc.submit(5, Buffer.alloc(64)); // work already on the device before anyone opened it
    const p = k.createProcess('p').pid;
    const dev = k.openDevice(p, DSA1);
    expect(acc.stats.queued).toBe(0);
    expect(acc.paused).toBe(false);
    k.setEngine(DSA1, false);
    acc.submit(5, Buffer.alloc(64));
    k.closeFd(p, dev);
    expect(acc.stats).toMatchObject({ queued: 0, aborted: 2, completed: 0 });
    expect(acc.paused).toBe(false);
  });

  it('a failed open or close (fail_nth) leaves the queued work and the engine state as they were', () => {
    const faults = new FaultInjector();
    // The engine is resumed by hand (a scheduler that never runs), so the reset's return to "paused" shows.
    const k = newKernel({ engine: { paused: true, scheduler: () => undefined }, faults });
    const acc = k.accelerators.accelerator(DSA1);
    const p = k.createProcess('p').pid;
    const state = () => ({ queued: acc.queuedFor(9), paused: acc.paused, aborted: acc.stats.aborted });
    const failEveryStep = (op: () => unknown): unknown => {
      for (let nth = 1; ; nth++) {
        const before = { kernel: k.snapshot(), engine: state() };
        faults.arm(nth);
        try {
          const result = op();
          faults.disarm();
          return result;
        } catch (err) {
          faults.disarm();
          expect(faults.fired).not.toBeNull();
          expect({ kernel: k.snapshot(), engine: state() }).toEqual(before);
        }
      }
    };
    acc.resume();
    acc.submit(9, Buffer.alloc(64));
    acc.submit(9, Buffer.alloc(64));
    const dev = failEveryStep(() => k.openDevice(p, DSA1)) as number;
    expect(state()).toEqual({ queued: 0, paused: true, aborted: 2 });
    acc.resume();
    acc.submit(9, Buffer.alloc(64));
    failEveryStep(() => k.closeFd(p, dev));
    expect(state()).toEqual({ queued: 0, paused: true, aborted: 3 });
  });
});
