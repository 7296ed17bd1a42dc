import { decodeCompletion } from '@app/shared/dsa/descriptor';
import { decodeDescriptor } from '@app/shared/dsa/descriptor-decode';
import { CompletionStatus } from '@app/shared/dsa/dsa.constants';
import { hostSva, memmove } from '../data-plane.testing';
import { DSA0, newKernel, PAGE } from '../kernel.testing';
import { prepareEnqcmd } from './enqcmd';
import { devicePortal } from './portal';

describe('ENQCMD portal: descriptor buffers lent per call', () => {
  it('two ENQCMDs in flight never share a buffer; one the device copied is lent again, and the queue keeps its own copy', () => {
    const k = newKernel({ engine: { paused: true } });
    const h = hostSva(k, DSA0, 3);
    const portal = devicePortal(k.kernel.accelerators, k.kernel.procs.running(h.pid), h.dev);
    const a = prepareEnqcmd(portal, memmove(h.buf, h.buf + PAGE, 64, h.buf + 2 * PAGE));
    const b = prepareEnqcmd(portal, memmove(h.buf, h.buf + PAGE, 128, h.buf + 2 * PAGE));
    expect(b).not.toBe(a);
    expect(decodeDescriptor(a)).toMatchObject({ ok: true, descriptor: { length: 64 } });
    expect(decodeDescriptor(b)).toMatchObject({ ok: true, descriptor: { length: 128 } });

    expect(portal.submit(h.ppasid, a)).toBe('accepted');
    const c = prepareEnqcmd(portal, memmove(h.buf, h.buf + PAGE, 256, h.buf + 2 * PAGE));
    expect(c).toBe(a); // back from the device, lent to the next call
    expect(decodeDescriptor(b)).toMatchObject({ ok: true, descriptor: { length: 128 } }); // untouched

    // What runs is the device's copy of the first descriptor, not the buffer the next call rewrote.
    expect(k.accelerators.accelerator(DSA0).step()).toBe(true);
    expect(decodeCompletion(k.readMemory(h.pid, h.buf + 2 * PAGE, 32))).toMatchObject({ status: CompletionStatus.success, bytesCompleted: 64 });
  });
});
