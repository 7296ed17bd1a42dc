import { decodeCompletion } from '@app/shared/dsa/descriptor';
import { CompletionStatus } from '@app/shared/dsa/dsa.constants';
import { bytes, hostSva, memmove } from '../data-plane.testing';
import { KernelEvent } from '../kernel';
import { FAULT_REASONS } from '../iommu/iommu.constants';
import { DSA0, DSA1, errnoOf, newKernel, NOPASID, PAGE, vmmWithGpaSpace, type TestKernel } from '../kernel.testing';

function stalled(events: KernelEvent[] = []): TestKernel {
  return newKernel({ engine: { paused: true }, onEvent: (e) => events.push(e) });
}

const record = (k: TestKernel, pid: number, at: number) => decodeCompletion(k.readMemory(pid, at, 32));

describe('host SVA: ENQCMD → device DMA through the process page table', () => {
  it('memmove between two buffers of the process moves the bytes and writes the completion record', () => {
    const events: KernelEvent[] = [];
    const k = stalled(events);
    const a = hostSva(k, DSA0);
    const src = bytes(5000);
    k.writeMemory(a.pid, a.buf + 100, src);
    const done = a.buf + 3 * PAGE;
    expect(k.enqcmd(a.pid, a.dev, memmove(a.buf + 100, a.buf + PAGE + 2000, 5000, done))).toEqual({ result: 'accepted' });
    expect(k.accelerators.accelerator(DSA0).queuedFor(a.ppasid)).toBe(1);
    expect(record(k, a.pid, done).status).toBe(0); // nothing ran yet
    expect(k.accelerators.accelerator(DSA0).step()).toBe(true);
    expect(k.readMemory(a.pid, a.buf + PAGE + 2000, 5000)).toEqual(src);
    expect(record(k, a.pid, done)).toMatchObject({ status: CompletionStatus.success, bytesCompleted: 5000 });
    expect(k.faults()).toEqual([]);
    expect(events).toContainEqual(expect.objectContaining({ kind: 'device-completion', pid: a.pid, bdf: DSA0, ppasid: a.ppasid, op: 'memmove', status: 1 }));
  });

  it('with the engine running, the scheduler executes the work on a later tick', async () => {
    const k = newKernel();
    const a = hostSva(k, DSA1);
    k.writeMemory(a.pid, a.buf, Buffer.from('hello, device'));
    expect(k.enqcmd(a.pid, a.dev, memmove(a.buf, a.buf + PAGE, 13, a.buf + 2 * PAGE)).result).toBe('accepted');
    for (let tick = 0; tick < 10 && record(k, a.pid, a.buf + 2 * PAGE).status === 0; tick++) await new Promise((r) => setImmediate(r));
    expect(record(k, a.pid, a.buf + 2 * PAGE).status).toBe(CompletionStatus.success);
    expect(k.readMemory(a.pid, a.buf + PAGE, 13).toString()).toBe('hello, device');
  });

  it('a descriptor touching an unmapped address completes with a page fault record and an IOMMU fault', () => {
    const events: KernelEvent[] = [];
    const k = stalled(events);
    const a = hostSva(k, DSA0);
    const beyond = a.buf + 4 * PAGE; // first byte after the mapping
    k.enqcmd(a.pid, a.dev, memmove(a.buf, beyond, 16, a.buf + 3 * PAGE));
    k.accelerators.accelerator(DSA0).step();
    expect(record(k, a.pid, a.buf + 3 * PAGE)).toMatchObject({ status: CompletionStatus.pageFault, faultAddress: beyond, bytesCompleted: 0 });
    expect(k.faults()).toEqual([{ bdf: DSA0, pasid: a.ppasid, address: beyond, access: 'write', reason: 'fl-not-present', code: FAULT_REASONS['fl-not-present'].code }]);
    expect(events).toContainEqual({ kind: 'fault', pid: a.pid, bdf: DSA0, pasid: a.ppasid, address: beyond, access: 'write', reason: 'fl-not-present', code: FAULT_REASONS['fl-not-present'].code });
  });
});

describe('drain: no DMA for a PASID once its route is gone', () => {
  type Teardown = (k: TestKernel, a: ReturnType<typeof hostSva>) => void;
  const cases: Array<[string, Teardown, string]> = [
    ['DISALLOW', (k, a) => void k.disallowIoasid(a.pid, a.dev, { ioasidFd: a.fd, ioasid: a.ppasid }), 'no-route'],
    ['DESTROY (route stays, blocked)', (k, a) => k.destroy(a.pid, a.fd, a.ppasid), 'translation-blocked'],
    ['closing the device fd', (k, a) => k.closeFd(a.pid, a.dev), 'no-route'],
    ['closing the ioasid fd (the route is detached too)', (k, a) => k.closeFd(a.pid, a.fd), 'no-route'],
  ];

  it.each(cases)('queued work is aborted by %s and never writes afterwards', (_name, teardown, laterReason) => {
    const k = stalled();
    const a = hostSva(k, DSA0);
    const dev = k.accelerators.accelerator(DSA0);
    k.writeMemory(a.pid, a.buf, bytes(64));
    const dst = a.buf + PAGE;
    const done = [a.buf + 2 * PAGE, a.buf + 2 * PAGE + 32];
    k.enqcmd(a.pid, a.dev, memmove(a.buf, dst, 64, done[0]));
    k.enqcmd(a.pid, a.dev, { op: 'fill', dst, length: 64, pattern: 0x41414141, completion: done[1] });
    teardown(k, a);
    expect(dev.queuedFor(a.ppasid)).toBe(0);
    for (const at of done) expect(record(k, a.pid, at).status).toBe(CompletionStatus.aborted);
    k.setEngine(DSA0, true);
    while (dev.step());
    expect(k.readMemory(a.pid, dst, 64)).toEqual(Buffer.alloc(64));
    expect(k.faults()).toEqual([]);
    expect(dev.stats).toMatchObject({ aborted: 2, completed: 0 });
    // The process still holds IA32_PASID: new work with that PASID faults in the IOMMU and moves nothing.
    if (k.process(a.pid).fds.some((f) => f.kind === 'device')) {
      k.enqcmd(a.pid, a.dev, memmove(a.buf, dst, 64, done[0]));
      dev.step();
      // the source read faults, then the completion-record write (the record is dropped)
      expect(k.faults().map((f) => [f.reason, f.access])).toEqual([
        [laterReason, 'read'],
        [laterReason, 'write'],
      ]);
      expect(k.readMemory(a.pid, dst, 64)).toEqual(Buffer.alloc(64));
    }
  });

  it('process death drains the work its fds allowed', () => {
    const k = stalled();
    const a = hostSva(k, DSA0);
    const b = hostSva(k, DSA1);
    k.enqcmd(a.pid, a.dev, memmove(a.buf, a.buf + PAGE, 8, a.buf + 2 * PAGE));
    k.enqcmd(b.pid, b.dev, memmove(b.buf, b.buf + PAGE, 8, b.buf + 2 * PAGE));
    k.killProcess(a.pid, 'test');
    expect(k.accelerators.accelerator(DSA0).stats).toMatchObject({ queued: 0, aborted: 1 });
    expect(k.accelerators.accelerator(DSA1).stats).toMatchObject({ queued: 1, aborted: 0 });
  });

  it('a RID route drains RID requests only', () => {
    const k = stalled();
    const { pid, fd, gpa } = vmmWithGpaSpace(k, 4);
    const dev = k.openDevice(pid, DSA0);
    k.allowIoasid(pid, dev, { ioasidFd: fd, ioasid: gpa, mode: 'rid' });
    const acc = k.accelerators.accelerator(DSA0);
    acc.submit(null, Buffer.alloc(64)); // a RID descriptor (kernel-mode submission path, not ENQCMD)
    acc.submit(7, Buffer.alloc(64));
    k.disallowIoasid(pid, dev, { ioasidFd: fd, ioasid: gpa });
    expect([acc.queuedFor(null), acc.queuedFor(7)]).toEqual([0, 1]);
  });
});

describe('admin hardware calls', () => {
  it('deviceDma reads and writes through the IOMMU, RID route or PASID', () => {
    const k = stalled();
    const { pid, fd, gpa, hva } = vmmWithGpaSpace(k, 4);
    const dev = k.openDevice(pid, DSA0);
    k.allowIoasid(pid, dev, { ioasidFd: fd, ioasid: gpa, mode: 'rid' });
    expect(k.deviceDma(DSA0, { pasid: null, address: PAGE - 2, length: 4, write: true, data: Buffer.from('wxyz') })).toEqual({ ok: true });
    expect(k.readMemory(pid, hva + PAGE - 2, 4).toString()).toBe('wxyz');
    expect(k.deviceDma(DSA0, { pasid: 0, address: PAGE - 2, length: 4, write: false })).toEqual({ ok: true, data: Buffer.from('wxyz') });
    const r = k.deviceDma(DSA0, { pasid: 5, address: 0, length: 4, write: false });
    expect(r).toEqual({ ok: false, fault: { bdf: DSA0, pasid: 5, address: 0, access: 'read', reason: 'no-route', code: FAULT_REASONS['no-route'].code } });
  });

  it('bad requests fail with an errno and touch nothing', () => {
    const k = stalled();
    const before = k.faults();
    expect(errnoOf(() => k.deviceDma('0000:00:00.0', { pasid: null, address: 0, length: 4, write: false }))).toBe('ENODEV');
    expect(errnoOf(() => k.deviceDma(NOPASID, { pasid: 3, address: 0, length: 4, write: false }))).toBe('EINVAL');
    expect(errnoOf(() => k.deviceDma(DSA0, { pasid: 2 ** 20, address: 0, length: 4, write: false }))).toBe('EINVAL');
    expect(errnoOf(() => k.deviceDma(DSA0, { pasid: null, address: 0, length: 4, write: true, data: Buffer.alloc(3) }))).toBe('EINVAL');
    expect(errnoOf(() => k.deviceDma(DSA0, { pasid: null, address: -1, length: 4, write: false }))).toBe('EINVAL');
    expect(k.faults()).toEqual(before);
    expect(errnoOf(() => k.setEngine('0000:00:00.0', true))).toBe('ENODEV');
  });

  it('setEngine stalls and resumes a device', () => {
    const k = newKernel();
    k.setEngine(DSA0, false);
    expect(k.accelerators.accelerator(DSA0).paused).toBe(true);
    k.setEngine(DSA0, true);
    expect(k.accelerators.accelerator(DSA0).paused).toBe(false);
  });
});
