// DESIGN §10 on the whole stack in one process, from the real code: a guest's device faults on pages the guest never
// touched, the host IOMMU queues the page request group in the VM's fault queue, the VMM forwards it in guest terms,
// the guest's vIOMMU driver maps the pages and answers, the device retries. Every rule of the round trip, each
// asserted on what the three apps journaled and hold.
import { COMPLETION_RECORD_SIZE, CompletionStatus } from '@app/shared/dsa/dsa.constants';
import { decodeCompletion } from '@app/shared/dsa/descriptor';
import { HandTimers } from '@app/shared/hand-timers.testing';
import type { JournalEvent } from '@app/shared/journal/journal';
import { PRI_RETRY_BACKOFF_MS } from '../apps/host-kernel/src/devices/devices.constants';
import { PRQ_DEFAULT_TIMEOUT_MS } from '../apps/host-kernel/src/iommu/iommu.constants';
import { PAGE_SIZE } from '../apps/guest/src/mm/mm.constants';
import { COMPLETION_STATUS_NONE } from '../apps/guest/src/drivers/drivers.constants';
import type { GuestApp } from '../apps/guest/src/guest.app';
import { InProcessHostKernel } from './host-kernel.in-process';
import { InProcessStack, type InProcessStackOptions, STACK_DEVICES, type VmHandle } from './in-process-stack';
import { InProcessVmm } from './vmm.in-process';

const DSA0 = STACK_DEVICES[0].bdf;
const LENGTH = 64 * 1024;
const PAGES = LENGTH / PAGE_SIZE;

interface Bed {
  stack: InProcessStack;
  vm: VmHandle;
  guest: GuestApp;
  vrid: number;
  pid: number;
  vpasid: number;
  src: number;
  bytes: Buffer;
  /** The VM's vIOMMU as its guest reaches it (to answer by hand when the guest leaves requests alone). */
  viommu: InProcessVmm;
}

const open: InProcessStack[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
});

/** A stack, one VM on DSA0 with its guest booted, a bound process whose source buffer is written (touched). */
async function bed(opts: InProcessStackOptions = {}, stack?: InProcessStack): Promise<Bed> {
  const s = stack ?? (await InProcessStack.create({ accel: { maxPolls: 100_000 }, ...opts }));
  if (!stack) open.push(s);
  const vm = await s.createVm({ name: `vm${s.guests.size + 1}`, memoryMiB: 8, devices: [DSA0] });
  const guest = await s.bootGuest(vm);
  const vrid = guest.status().machine?.devices[0].vrid as number;
  const { pid } = await s.console(vm.id, (g) => g.createProcess('app'));
  const { gva: src } = await s.console(vm.id, (g) => g.mmap(pid, LENGTH));
  const bytes = Buffer.from(Array.from({ length: LENGTH }, (_, i) => (i * 37 + 11) & 0xff));
  await s.console(vm.id, (g) => g.writeMemory(pid, src, bytes));
  const { vpasid } = await s.console(vm.id, (g) => g.bind(pid, vrid));
  const viommu = new InProcessVmm(s.vmm, s.operator, vm.id, vm.token);
  return { stack: s, vm, guest, vrid, pid, vpasid, src, bytes, viommu };
}

const copy = (b: Bed, dst: number, length = LENGTH) => b.stack.console(b.vm.id, (g) => g.submit(b.pid, { vrid: b.vrid, descriptor: { op: 'memmove', src: b.src, dst, length } }));
const of = (rows: JournalEvent[], operation: string) => rows.filter((r) => r.operation === operation);
const adminView = (b: Bed) => new InProcessHostKernel(b.stack.host, b.stack.operator, b.stack.hostAdminToken).pageRequests();

/** Resolves once the guest's vIOMMU queue holds `n` groups (a guest that leaves them alone). */
async function waiting(b: Bed, n = 1): Promise<void> {
  for (let i = 0; i < 1000 && (await b.viommu.pageRequests()).length < n; i++) await new Promise((r) => setImmediate(r));
  expect(await b.viommu.pageRequests()).toHaveLength(n);
}

describe('page requests on the whole stack', () => {
  it('a 64 KiB copy into memory the guest never touched completes through one page request group of one request per page', async () => {
    const b = await bed();
    const { gva: dst } = await b.stack.console(b.vm.id, (g) => g.mmap(b.pid, LENGTH));
    expect(await copy(b, dst)).toEqual({ result: 'accepted', status: CompletionStatus.success, bytes: LENGTH });
    expect(await b.stack.console(b.vm.id, (g) => g.readMemory(b.pid, dst, LENGTH))).toEqual(b.bytes);
    const { host, vmm, guests } = await b.stack.journals();
    const guest = guests.get(b.vm.id) ?? [];
    const requests = of(host, 'event.page-request');
    expect(requests).toHaveLength(1); // one group: every missing page asked for at once
    expect((requests[0].args as { requests: unknown[] }).requests).toHaveLength(PAGES);
    expect(of(host, 'event.page-response').map((r) => (r.args as { code: string; reason: string }).code)).toEqual(['success']);
    expect(of(vmm, 'viommu.page_request').map((r) => r.result)).toEqual([{ groups: [expect.objectContaining({ outcome: 'forwarded', requests: PAGES, vpasid: b.vpasid })] }]);
    expect(of(guest, 'sva.page_fault').map((r) => r.result)).toEqual([{ pid: b.pid, code: 'success' }]);
    // The round trip is one trace: the guest's submit, the device's request, the VMM's forward, the guest's answer.
    const submit = of(guest, 'accel.submit')[0].traceId;
    for (const r of [...requests, ...of(vmm, 'viommu.page_request'), ...of(guest, 'sva.page_fault'), ...of(vmm, 'viommu.page_response')]) expect(r.traceId).toBe(submit);
    expect(await adminView(b)).toMatchObject({ pending: 0, held: 0, overflows: 0 });
  });

  it('a destination in no mapping: the guest answers invalid, the copy ends with status 2 at that address, nothing written', async () => {
    const b = await bed();
    const nowhere = 0x10_0000; // below every mmap
    expect(await copy(b, nowhere, 2 * PAGE_SIZE)).toEqual({ result: 'accepted', status: CompletionStatus.pageFault, bytes: 0, faultAddress: nowhere });
    const { host, guests } = await b.stack.journals();
    expect(of(guests.get(b.vm.id) ?? [], 'sva.page_fault').map((r) => r.result)).toEqual([{ pid: b.pid, code: 'invalid' }]);
    expect(of(host, 'event.page-response').map((r) => r.args)).toEqual([expect.objectContaining({ code: 'invalid', reason: 'response', by: expect.stringMatching(/^pid:/) })]);
    await expect(b.stack.console(b.vm.id, (g) => g.readMemory(b.pid, nowhere, 1))).rejects.toMatchObject({ errno: 'EFAULT' });
  });

  it('a guest answering failure: the copy ends with status 2 and the host received invalid', async () => {
    const b = await bed({ guestPageRequests: 'ignore' });
    const { gva: dst } = await b.stack.console(b.vm.id, (g) => g.mmap(b.pid, PAGE_SIZE));
    const done = copy(b, dst, 64);
    await waiting(b);
    const [pr] = await b.viommu.pageRequests();
    expect(pr).toEqual({ seq: 1, vrid: b.vrid, vpasid: b.vpasid, grpid: 0, requests: [expect.objectContaining({ addr: dst, last: true })] });
    await b.viommu.pageResponse({ vrid: pr.vrid, vpasid: pr.vpasid, grpid: pr.grpid, code: 'failure' });
    expect(await done).toMatchObject({ status: CompletionStatus.pageFault, faultAddress: dst });
    const { host } = await b.stack.journals();
    expect(of(host, 'fault.respond').map((r) => (r.args as { code: string }).code)).toEqual(['invalid']);
    await expect(b.viommu.pageResponse({ vrid: pr.vrid, vpasid: pr.vpasid, grpid: pr.grpid, code: 'success' })).rejects.toMatchObject({ errno: 'ENOENT' });
  });

  it('a guest that leaves its request alone: the driver stops polling and answers pending; the device still waits, and the record comes with the answer', async () => {
    const MAX_POLLS = 20;
    const b = await bed({ guestPageRequests: 'ignore', accel: { maxPolls: MAX_POLLS } });
    const { gva: dst } = await b.stack.console(b.vm.id, (g) => g.mmap(b.pid, PAGE_SIZE));
    const pending = await b.stack.console(b.vm.id, (g) => g.submit(b.pid, { vrid: b.vrid, descriptor: { op: 'fill', dst, length: 64, pattern: 0x5a } }));
    // Was a 500 EIO (the fuzzer's seed 3): nothing was refused, the descriptor is held by the device.
    expect(pending).toEqual({ result: 'pending', completion: expect.any(Number), polls: MAX_POLLS });
    if (pending.result !== 'pending') throw new Error('not pending');
    expect(b.stack.host.kernel.accelerators.accelerator(DSA0).stats.queued).toBe(1);
    const record = async () => decodeCompletion(await b.stack.console(b.vm.id, (g) => g.readMemory(b.pid, pending.completion, COMPLETION_RECORD_SIZE)));
    expect((await record()).status).toBe(COMPLETION_STATUS_NONE);
    await waiting(b);
    const [pr] = await b.viommu.pageRequests();
    await b.viommu.pageResponse({ vrid: pr.vrid, vpasid: pr.vpasid, grpid: pr.grpid, code: 'invalid' });
    for (let i = 0; i < 1000 && (await record()).status === COMPLETION_STATUS_NONE; i++) await new Promise((r) => setImmediate(r));
    expect(await record()).toMatchObject({ status: CompletionStatus.pageFault, faultAddress: dst });
  });

  it('a group nobody answers for PRQ_TIMEOUT_MS is answered invalid by the kernel, journaled as a timeout', async () => {
    const timers = new HandTimers();
    const b = await bed({ guestPageRequests: 'ignore', timers });
    const { gva: dst } = await b.stack.console(b.vm.id, (g) => g.mmap(b.pid, PAGE_SIZE));
    const done = copy(b, dst, 64);
    await waiting(b);
    expect(timers.fire(PRQ_DEFAULT_TIMEOUT_MS)).toBe(1);
    expect(await done).toMatchObject({ status: CompletionStatus.pageFault, faultAddress: dst });
    const { host } = await b.stack.journals();
    expect(of(host, 'event.page-response').map((r) => r.args)).toEqual([expect.objectContaining({ code: 'invalid', by: 'kernel', reason: 'timeout' })]);
    expect(await adminView(b)).toMatchObject({ pending: 0 });
  });

  it('unbind with a request waiting: answered invalid, the copy completes, the pPASID is freed, nothing waits on the host', async () => {
    const b = await bed({ guestPageRequests: 'ignore' });
    const { gva: dst } = await b.stack.console(b.vm.id, (g) => g.mmap(b.pid, PAGE_SIZE));
    const ppasid = b.stack.vmm.vms.running(b.vm.id).viommu.bindings()[0].ioasid;
    const done = copy(b, dst, 64);
    await waiting(b);
    await b.stack.console(b.vm.id, (g) => g.unbind(b.pid, b.vrid));
    expect(await done).toMatchObject({ status: CompletionStatus.pageFault });
    expect(await b.viommu.pageRequests()).toEqual([]);
    expect(b.stack.host.kernel.ioasids.pasidInfo(ppasid).state).toBe('free');
    expect(await adminView(b)).toMatchObject({ pending: 0, held: 0 });
    const { host } = await b.stack.journals();
    const teardown = host.filter((r) => ['fault.respond', 'kvm.unmap_pasid'].includes(r.operation)).map((r) => r.operation);
    expect(teardown).toEqual(['fault.respond', 'kvm.unmap_pasid']);
  });

  it('VM death with a request waiting: the VMM answers it invalid before its host side goes', async () => {
    const b = await bed({ guestPageRequests: 'ignore' });
    const { gva: dst } = await b.stack.console(b.vm.id, (g) => g.mmap(b.pid, PAGE_SIZE));
    void copy(b, dst, 64).catch(() => undefined);
    await waiting(b);
    await b.stack.deleteVm(b.vm.id);
    const { host } = await b.stack.journals();
    expect(of(host, 'fault.respond').map((r) => (r.args as { code: string }).code)).toEqual(['invalid']);
    expect(of(host, 'event.device-completion').map((r) => (r.args as { status: number }).status)).toEqual([CompletionStatus.pageFault]);
    expect(await adminView(b)).toMatchObject({ pending: 0, held: 0 });
  });

  it('group-index reuse: two groups with the same grpid, answered in turn, each answer takes exactly one', async () => {
    const b = await bed({ guestPageRequests: 'ignore' });
    const { gva: dst } = await b.stack.console(b.vm.id, (g) => g.mmap(b.pid, 2 * PAGE_SIZE));
    for (const [i, code] of [[0, 'invalid'], [1, 'invalid']] as const) {
      const done = copy(b, dst + i * PAGE_SIZE, 64);
      await waiting(b);
      const [pr] = await b.viommu.pageRequests();
      expect(pr.grpid).toBe(0); // the device's lowest free index, free again after the first answer
      await b.viommu.pageResponse({ vrid: pr.vrid, vpasid: pr.vpasid, grpid: 0, code });
      expect(await done).toMatchObject({ status: CompletionStatus.pageFault, faultAddress: dst + i * PAGE_SIZE });
      await expect(b.viommu.pageResponse({ vrid: pr.vrid, vpasid: pr.vpasid, grpid: 0, code })).rejects.toMatchObject({ errno: 'ENOENT' });
    }
    const { vmm, host } = await b.stack.journals();
    expect(of(vmm, 'viommu.page_response').filter((r) => r.errno === null).map((r) => r.result)).toEqual([
      { generation: 1, host: 'answered' },
      { generation: 2, host: 'answered' },
    ]);
    const cookies = of(host, 'fault.respond').map((r) => (r.args as { cookie: number }).cookie);
    expect(new Set(cookies).size).toBe(2); // two host groups, each answered once
  });

  it('a full host queue answers success on its own; the device retries later and the copy still completes', async () => {
    const timers = new HandTimers();
    const holder = await bed({ guestPageRequests: 'ignore', timers, prqDepth: PAGES });
    // A second VM on the other device, whose guest answers: its 64 KiB group cannot fit while the first one waits.
    const stack = holder.stack;
    const vm = await stack.createVm({ name: 'copier', memoryMiB: 8, devices: [STACK_DEVICES[1].bdf] });
    const guest = await stack.bootGuest(vm, { pageRequests: 'handle' });
    const vrid = guest.status().machine?.devices[0].vrid as number;
    const { pid } = await stack.console(vm.id, (g) => g.createProcess('copier'));
    const { gva: src } = await stack.console(vm.id, (g) => g.mmap(pid, LENGTH));
    await stack.console(vm.id, (g) => g.writeMemory(pid, src, holder.bytes));
    const { gva: dst } = await stack.console(vm.id, (g) => g.mmap(pid, LENGTH));
    await stack.console(vm.id, (g) => g.bind(pid, vrid));
    const { gva: held } = await stack.console(holder.vm.id, (g) => g.mmap(holder.pid, PAGE_SIZE));
    const heldCopy = copy(holder, held, 64);
    await waiting(holder);
    const done = stack.console(vm.id, (g) => g.submit(pid, { vrid, descriptor: { op: 'memmove', src, dst, length: LENGTH } }));
    for (let i = 0; i < 1000 && (await adminView(holder)).overflows === 0; i++) await new Promise((r) => setImmediate(r));
    expect(await adminView(holder)).toMatchObject({ overflows: 1, held: 1, depth: PAGES });
    for (let i = 0; i < 1000 && timers.pending.filter((ms) => ms === PRI_RETRY_BACKOFF_MS).length === 0; i++) await new Promise((r) => setImmediate(r));
    const [pr] = await holder.viommu.pageRequests();
    await holder.viommu.pageResponse({ vrid: pr.vrid, vpasid: pr.vpasid, grpid: pr.grpid, code: 'invalid' });
    expect(timers.fire(PRI_RETRY_BACKOFF_MS)).toBe(1); // the back-off ends: the retry's group fits now
    expect(await done).toEqual({ result: 'accepted', status: CompletionStatus.success, bytes: LENGTH });
    expect(await stack.console(vm.id, (g) => g.readMemory(pid, dst, LENGTH))).toEqual(holder.bytes);
    await heldCopy;
    const { host } = await stack.journals();
    expect(of(host, 'event.page-response').map((r) => [(r.args as { reason: string }).reason, (r.args as { code: string }).code])).toEqual([
      ['overflow', 'success'],
      ['response', 'invalid'],
      ['response', 'success'],
    ]);
  });
});
