import { CompletionStatus } from '@app/shared/dsa/dsa.constants';
import { HandTimers } from '@app/shared/hand-timers.testing';
import { IA32_PASID_VALID } from '@app/shared/x86/msr.constants';
import { bindGuestSva, bytes, guestRecord, guestWorld, type GuestWorld, hostSva } from '../data-plane.testing';
import { PRI_MAX_ROUNDS, PRI_RETRY_BACKOFF_MS } from '../devices/devices.constants';
import { PRQ_DEFAULT_DEPTH, PRQ_DEFAULT_TIMEOUT_MS } from '../iommu/iommu.constants';
import type { KernelEvent } from '../kernel';
import { DSA0, DSA1, errnoOf, expectFails, newKernel, PAGE, type TestKernel } from '../kernel.testing';

const VPASID = 7;
/** Guest virtual addresses of the buffers (the guest maps them, or not, in its own table). */
const SRC = 0x40_0000;
const DST = 0x50_0000;
const DONE = 0x60_0000;

/**
 * A VMM process whose guest has a nested vPASID bound with a fault queue on DSA0 (the VMM's side of DESIGN §10),
 * the engines stalled so each test runs the device step by step, timers fired by hand.
 */
function world(opts: { prqDepth?: number } = {}) {
  const events: KernelEvent[] = [];
  const timers = new HandTimers();
  const k = newKernel({ engine: { paused: true }, timers, onEvent: (e) => events.push(e), prqDepth: opts.prqDepth });
  const w = guestWorld(k, { ramPages: 64 });
  const queue = k.createFaultQueue(w.pid, w.fd);
  const ppasid = bindGuestSva(k, w, VPASID, w.cr3, queue);
  const src = bytes(2 * PAGE, 3);
  for (let i = 0; i < 2; i++) {
    const page = w.allocPage();
    w.map(SRC + i * PAGE, page);
    k.writeGuestMemory(w.pid, w.vm, page, src.subarray(i * PAGE, (i + 1) * PAGE));
  }
  const done = w.allocPage();
  w.map(DONE, done);
  return { k, w, queue, ppasid, src, done, events, timers, dev: k.accelerators.accelerator(DSA0) };
}

type World = ReturnType<typeof world>;

/** The guest's ENQCMD of a block-on-fault memmove of `length` bytes from SRC to `dst`. */
function copy(x: World, length = 2 * PAGE, dst = DST, completion = DONE): void {
  expect(x.k.vcpuEnqcmd(x.w.pid, x.w.vm, 0, x.w.dev, { op: 'memmove', src: SRC, dst, length, completion, blockOnFault: true })).toEqual({ result: 'accepted' });
}

/** The guest fixes its page table for the destination (as its page fault handler would). */
function mapDestination(w: GuestWorld, pages: number): number[] {
  const frames = Array.from({ length: pages }, () => w.allocPage());
  frames.forEach((f, i) => w.map(DST + i * PAGE, f));
  return frames;
}

const ofKind = (events: KernelEvent[], kind: string) => events.filter((e) => e.kind === kind);

describe('page requests of a nested page table go to its fault queue (iommufd FAULT object)', () => {
  it('a block-on-fault copy into unmapped guest pages sends one group, one request per page, and waits; success makes it retry and finish', () => {
    const x = world();
    copy(x);
    expect(x.dev.step()).toBe(true);
    expect(x.dev.stats).toMatchObject({ queued: 1, blocked: 1, pageRequests: 1 });
    expect(guestRecord(x.k, x.w, x.done).status).toBe(0); // it waits: no record
    const [request] = ofKind(x.events, 'page-request');
    expect(request).toMatchObject({ pid: x.w.pid, ppasid: x.ppasid, bdf: DSA0, grpid: 0, handler: 'queue', fd: x.w.fd, faultQueue: x.queue });
    expect(request.requests).toEqual([0, 1].map((i) => ({ address: DST + i * PAGE, perm: { read: false, write: true, exec: false, privileged: false }, last: i === 1 })));
    // Nothing to run until the answer: the engine does not spin.
    expect(x.dev.step()).toBe(false);
    const groups = x.k.readFaultGroups(x.w.pid, x.w.fd, x.queue);
    expect(groups).toEqual([{ cookie: 1, bdf: DSA0, pasid: x.ppasid, grpid: 0, requests: [0, 1].map((i) => ({ addr: DST + i * PAGE, perm: { read: false, write: true, exec: false, privileged: false }, last: i === 1 })) }]);
    expect(x.k.readFaultGroups(x.w.pid, x.w.fd, x.queue)).toEqual([]); // read once: it now waits for its answer
    const frames = mapDestination(x.w, 2);
    x.k.respondFault(x.w.pid, x.w.fd, x.queue, 1, 'success');
    expect(x.dev.step()).toBe(true);
    expect(guestRecord(x.k, x.w, x.done)).toMatchObject({ status: CompletionStatus.success, bytesCompleted: 2 * PAGE });
    expect(Buffer.concat(frames.map((f) => x.k.readGuestMemory(x.w.pid, x.w.vm, f, PAGE)))).toEqual(x.src);
    expect(ofKind(x.events, 'page-response')).toEqual([expect.objectContaining({ code: 'success', by: `pid:${x.w.pid}`, reason: 'response', grpid: 0 })]);
    expect(x.k.pageRequests()).toMatchObject({ pending: 0, held: 0 });
    expect(x.k.faults()).toEqual([]); // a page request is not a fault record
  });

  it('invalid ends the descriptor with status 2 at the first missing page, nothing written', () => {
    const x = world();
    copy(x);
    x.dev.step();
    const [g] = x.k.readFaultGroups(x.w.pid, x.w.fd, x.queue);
    const frames = mapDestination(x.w, 2); // mapped, but the answer says invalid: the device never retries
    x.k.respondFault(x.w.pid, x.w.fd, x.queue, g.cookie, 'invalid');
    x.dev.step();
    expect(guestRecord(x.k, x.w, x.done)).toMatchObject({ status: CompletionStatus.pageFault, faultAddress: DST, bytesCompleted: 0 });
    for (const f of frames) expect(x.k.readGuestMemory(x.w.pid, x.w.vm, f, PAGE)).toEqual(Buffer.alloc(PAGE));
  });

  it(`a page still missing after ${PRI_MAX_ROUNDS} rounds answered success ends with status 2; rounds after the first wait a back-off`, () => {
    const x = world();
    copy(x, PAGE);
    for (let round = 1; round <= PRI_MAX_ROUNDS; round++) {
      x.dev.step();
      const [g] = x.k.readFaultGroups(x.w.pid, x.w.fd, x.queue);
      expect(g.grpid).toBe(0); // the index is free again each round: reused
      x.k.respondFault(x.w.pid, x.w.fd, x.queue, g.cookie, 'success'); // ...without mapping anything
      x.dev.step();
      if (round < PRI_MAX_ROUNDS) {
        // The answered group's timeout is cancelled; what waits is the device's back-off, doubling each round.
        expect(x.timers.pending).toEqual([PRI_RETRY_BACKOFF_MS * 2 ** (round - 1)]);
        expect(x.dev.step()).toBe(false);
        x.timers.fire();
      }
    }
    expect(guestRecord(x.k, x.w, x.done)).toMatchObject({ status: CompletionStatus.pageFault, faultAddress: DST });
    expect(ofKind(x.events, 'page-request')).toHaveLength(PRI_MAX_ROUNDS);
  });

  it('cookies: an unknown or used one is EINVAL; a bad code is EINVAL and the group stays pending; each changes nothing', () => {
    const x = world();
    copy(x);
    x.dev.step();
    const [g] = x.k.readFaultGroups(x.w.pid, x.w.fd, x.queue);
    expectFails(x.k, () => x.k.respondFault(x.w.pid, x.w.fd, x.queue, g.cookie + 100, 'success'), 'EINVAL');
    expectFails(x.k, () => x.k.respondFault(x.w.pid, x.w.fd, x.queue, g.cookie, 'failure' as 'success'), 'EINVAL');
    expect(x.k.pageRequests().groups).toEqual([expect.objectContaining({ grpid: g.grpid, handler: 'queue', owner: x.w.pid })]);
    x.k.respondFault(x.w.pid, x.w.fd, x.queue, g.cookie, 'invalid');
    expectFails(x.k, () => x.k.respondFault(x.w.pid, x.w.fd, x.queue, g.cookie, 'invalid'), 'EINVAL');
    expect(x.k.pageRequests().pending).toBe(0);
  });

  it("another process's queue is EBADF (its fd is not ours) or ENOENT (our fd has no such queue)", () => {
    const x = world();
    const { pid: other } = x.k.createProcess('other');
    expect(errnoOf(() => x.k.readFaultGroups(other, x.w.fd, x.queue))).toBe('EBADF');
    const fd = x.k.openIoasid(other);
    expect(fd).toBe(x.w.fd); // the same fd number, in another fd table
    expect(errnoOf(() => x.k.readFaultGroups(other, fd, x.queue))).toBe('ENOENT');
    expect(errnoOf(() => x.k.destroyFaultQueue(other, fd, x.queue))).toBe('ENOENT');
    expect(errnoOf(() => x.k.bindPgtbl(other, fd, x.k.alloc(other, fd), { kind: 'iova', faultQueue: 1 } as never))).toBe('EINVAL');
  });

  it('a queue a page table uses cannot be destroyed (EBUSY); after DESTROY of the table it can', () => {
    const x = world();
    expectFails(x.k, () => x.k.destroyFaultQueue(x.w.pid, x.w.fd, x.queue), 'EBUSY');
    expect(x.k.info(x.w.pid, x.w.fd, x.ppasid).pgtbl).toMatchObject({ kind: 'nested', faultQueue: x.queue });
    x.k.destroy(x.w.pid, x.w.fd, x.ppasid);
    x.k.destroyFaultQueue(x.w.pid, x.w.fd, x.queue);
    expect(errnoOf(() => x.k.readFaultGroups(x.w.pid, x.w.fd, x.queue))).toBe('ENOENT');
    expect(errnoOf(() => x.k.bindPgtbl(x.w.pid, x.w.fd, x.k.alloc(x.w.pid, x.w.fd), { kind: 'nested', parent: x.w.gpa, faultQueue: x.queue }))).toBe('ENOENT');
  });
});

describe('teardown never leaves a device waiting', () => {
  type Teardown = (x: World) => void;
  const cases: Array<[string, Teardown, boolean]> = [
    ['DESTROY of the page table', (x) => x.k.destroy(x.w.pid, x.w.fd, x.ppasid), false],
    ['DISALLOW', (x) => void x.k.disallowIoasid(x.w.pid, x.w.dev, { ioasidFd: x.w.fd, ioasid: x.ppasid }), false],
    ['closing the device fd', (x) => x.k.closeFd(x.w.pid, x.w.dev), false],
    ['closing the ioasid fd', (x) => x.k.closeFd(x.w.pid, x.w.fd), false],
    ['process death', (x) => x.k.killProcess(x.w.pid, 'test'), true],
  ];

  it.each(cases)('%s answers every pending group invalid, delivered or not, and the descriptor completes', (_name, teardown, gone) => {
    const x = world();
    copy(x, PAGE, DST, DONE);
    copy(x, PAGE, DST + 8 * PAGE, DONE + 32);
    x.dev.step();
    x.dev.step();
    const [read] = x.k.readFaultGroups(x.w.pid, x.w.fd, x.queue); // one read, one never read
    copy(x, PAGE, DST + 16 * PAGE, DONE + 64); // one not started yet
    const record = (offset: number) => (gone ? null : guestRecord(x.k, x.w, x.done + offset));
    teardown(x);
    expect(ofKind(x.events, 'page-response').map((e) => [e.grpid, e.code, e.by, e.reason])).toEqual([
      [read.grpid, 'invalid', 'kernel', 'teardown'],
      [1, 'invalid', 'kernel', 'teardown'],
    ]);
    expect(x.k.pageRequests()).toMatchObject({ pending: 0, held: 0 });
    expect(x.dev.stats).toMatchObject({ queued: 0, blocked: 0 });
    const completions = ofKind(x.events, 'device-completion').map((e) => e.status);
    expect(completions).toEqual([CompletionStatus.pageFault, CompletionStatus.pageFault, CompletionStatus.aborted]);
    if (!gone) expect([record(0)?.status, record(32)?.status, record(64)?.status]).toEqual(completions);
    expect(errnoOf(() => x.k.respondFault(x.w.pid, x.w.fd, x.queue, read.cookie, 'success'))).not.toBeNull();
  });

  it('the PASID returns to the pool once the teardown is complete: no page request holds it', () => {
    const x = world();
    copy(x, PAGE);
    x.dev.step();
    x.k.unmapPasid(x.w.pid, x.w.vm, VPASID);
    x.k.disallowIoasid(x.w.pid, x.w.dev, { ioasidFd: x.w.fd, ioasid: x.ppasid });
    x.k.destroy(x.w.pid, x.w.fd, x.ppasid);
    expect(x.k.pasidInfo(x.ppasid).state).toBe('free');
    expect(x.k.snapshot().pageRequests).toEqual([]);
  });
});

describe('the kernel answers on its own', () => {
  it(`a group unanswered for PRQ_TIMEOUT_MS (default ${PRQ_DEFAULT_TIMEOUT_MS}) is answered invalid, as a timeout`, () => {
    const x = world();
    copy(x, PAGE);
    x.dev.step();
    expect(x.timers.pending).toEqual([PRQ_DEFAULT_TIMEOUT_MS]);
    x.timers.fire();
    expect(ofKind(x.events, 'page-response')).toEqual([expect.objectContaining({ code: 'invalid', by: 'kernel', reason: 'timeout' })]);
    x.dev.step();
    expect(guestRecord(x.k, x.w, x.done)).toMatchObject({ status: CompletionStatus.pageFault, faultAddress: DST });
    // The owner read it before? No: the queue forgot it, so its cookie will never answer anything.
    expect(x.k.readFaultGroups(x.w.pid, x.w.fd, x.queue)).toEqual([]);
  });

  it(`a full queue (default ${PRQ_DEFAULT_DEPTH} requests) answers success itself and counts an overflow; the device retries later and finishes`, () => {
    const x = world({ prqDepth: 3 });
    copy(x, 2 * PAGE); // 2 requests held
    x.dev.step();
    copy(x, 2 * PAGE, DST + 8 * PAGE, DONE + 32); // 2 more do not fit
    x.dev.step();
    expect(ofKind(x.events, 'page-response')).toEqual([expect.objectContaining({ code: 'success', by: 'iommu', reason: 'overflow', grpid: 1 })]);
    expect(x.k.pageRequests()).toMatchObject({ overflows: 1, held: 2, depth: 3 });
    x.dev.step(); // the retry finds the pages still missing: it backs off
    expect(x.dev.stats.blocked).toBe(2);
    const [first] = x.k.readFaultGroups(x.w.pid, x.w.fd, x.queue);
    mapDestination(x.w, 2);
    for (let i = 0; i < 2; i++) x.w.map(DST + (8 + i) * PAGE, x.w.allocPage());
    x.k.respondFault(x.w.pid, x.w.fd, x.queue, first.cookie, 'success');
    x.dev.step();
    x.timers.fire(); // the back-off ends: the second copy's pages are there now
    x.dev.step();
    expect([guestRecord(x.k, x.w, x.done).status, guestRecord(x.k, x.w, x.done + 32).status]).toEqual([CompletionStatus.success, CompletionStatus.success]);
  });

  it('no handler, no PASID, a privileged request: answered invalid at once; the descriptor ends with status 2', () => {
    const x = world();
    // A nested table without a fault queue takes no page requests.
    const bare = bindGuestSva(x.k, x.w, VPASID + 1, x.w.cr3);
    x.k.vcpuWrmsr(x.w.pid, x.w.vm, 0, 'IA32_PASID', (IA32_PASID_VALID | (VPASID + 1)) >>> 0);
    copy(x, PAGE);
    x.dev.step(); // the answer comes back at once...
    x.dev.step(); // ...and the device finishes on its next run
    expect(ofKind(x.events, 'page-response').at(-1)).toMatchObject({ ppasid: bare, code: 'invalid', reason: 'refused', detail: expect.stringMatching(/takes no page requests/) });
    expect(guestRecord(x.k, x.w, x.done)).toMatchObject({ status: CompletionStatus.pageFault, faultAddress: DST });
    // ENQCMDS from the guest kernel with the privilege bit: Linux's prq.c refuses Privilege Mode requests.
    x.k.vcpuEnqcmds(x.w.pid, x.w.vm, 0, x.w.dev, { op: 'memmove', src: SRC, dst: DST, length: 8, completion: DONE + 32, blockOnFault: true }, VPASID, true);
    x.dev.step();
    x.dev.step();
    expect(ofKind(x.events, 'page-response').at(-1)).toMatchObject({ ppasid: x.ppasid, code: 'invalid', reason: 'refused', detail: 'page request in Privilege Mode' });
    expect(guestRecord(x.k, x.w, x.done + 32)).toMatchObject({ status: CompletionStatus.pageFault, faultAddress: DST });
    const answers: string[] = [];
    x.k.iommu.pageRequest(DSA1, null, 0, [{ address: DST, perm: { read: true, write: false, exec: false, privileged: false }, last: true }], (c) => answers.push(c));
    x.k.iommu.pageRequest(DSA0, x.ppasid, 0, [{ address: DST + 1, perm: { read: true, write: false, exec: false, privileged: false }, last: true }], (c) => answers.push(c));
    x.k.iommu.pageRequest(DSA0, x.ppasid, 600, [{ address: DST, perm: { read: true, write: false, exec: false, privileged: false }, last: true }], (c) => answers.push(c));
    expect(answers).toEqual(['invalid', 'invalid', 'invalid']);
    expect(x.k.pageRequests().pending).toBe(0);
  });
});

describe('host SVA: the kernel answers its own processes (handle_mm_fault)', () => {
  /** hostSva's process (its 4 pages touched) with a page-filled source and an mmap it never touched. */
  function hostProcess(k: TestKernel) {
    const a = hostSva(k, DSA1, 4);
    const src = bytes(PAGE, 9);
    k.writeMemory(a.pid, a.buf, src);
    return { pid: a.pid, buf: a.buf, dev: a.dev, src, done: a.buf + 3 * PAGE, untouched: k.mmap(a.pid, 2 * PAGE) };
  }

  it('a page inside an mmap: populated and answered success at once; the copy finishes', () => {
    const events: KernelEvent[] = [];
    const k = newKernel({ engine: { paused: true }, onEvent: (e) => events.push(e) });
    const p = hostProcess(k);
    const resident = k.snapshot().processes.find((x) => x.pid === p.pid)?.residentPages;
    k.enqcmd(p.pid, p.dev, { op: 'memmove', src: p.buf, dst: p.untouched, length: PAGE, completion: p.done, blockOnFault: true });
    k.accelerators.accelerator(DSA1).step();
    expect(ofKind(events, 'page-response')).toEqual([expect.objectContaining({ code: 'success', by: 'kernel', reason: 'response' })]);
    k.accelerators.accelerator(DSA1).step();
    expect(k.readMemory(p.pid, p.untouched, PAGE)).toEqual(p.src);
    expect(k.snapshot().processes.find((x) => x.pid === p.pid)?.residentPages).toBe((resident as number) + 1);
  });

  it('outside any mapping: answered invalid, status 2; without the flag an untouched page faults at once', () => {
    const events: KernelEvent[] = [];
    const k = newKernel({ engine: { paused: true }, onEvent: (e) => events.push(e) });
    const p = hostProcess(k);
    const dev = k.accelerators.accelerator(DSA1);
    k.enqcmd(p.pid, p.dev, { op: 'memmove', src: p.buf, dst: p.buf + 8 * PAGE, length: 16, completion: p.done, blockOnFault: true });
    dev.step();
    dev.step();
    expect(ofKind(events, 'page-response')).toEqual([expect.objectContaining({ code: 'invalid', by: 'kernel', reason: 'response' })]);
    expect(k.readMemory(p.pid, p.done, 32)[0]).toBe(CompletionStatus.pageFault);
    k.enqcmd(p.pid, p.dev, { op: 'memmove', src: p.buf, dst: p.untouched, length: 16, completion: p.done });
    dev.step();
    expect(k.readMemory(p.pid, p.done, 32)[0]).toBe(CompletionStatus.pageFault);
    expect(k.faults().at(-1)).toMatchObject({ address: p.untouched, reason: 'fl-not-present' });
  });
});
