// DESIGN §10 over the three processes: page requests end to end. A guest's device faults on pages the guest never
// touched and the guest fixes them; a host process answers its own fault queue; the kernel answers host SVA, times
// out, and answers every pending group when something is torn down. One stack for the file (PRQ_DEPTH 16,
// PRQ_TIMEOUT_MS 1000): a VM whose guest handles page requests, one whose guest leaves them to the test (its
// vIOMMU driven by hand with the VM token), and two spare devices for host processes. The VMM is killed last.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HostKernelClient } from '../libs/shared/src/http/host-kernel.client';
import type { VmmClient } from '../libs/shared/src/http/vmm.client';
import { decodeCompletion } from '../libs/shared/src/dsa/descriptor';
import type { VirtualPageRequest } from '../libs/shared/src/contract/vmm';
import { IA32_PASID_VALID } from '../libs/shared/src/x86/msr.constants';
import { guestCall, hostRows, pasidState, ppasidOfTrace, processWithBuffers, readGuest } from './harness/guest';
import { useStack } from './harness/hooks';
import { AUDIT, eventually, http, newTraceparent } from './harness/stack';

const PAGE = 4096;
const LENGTH = 64 * 1024;
const PRQ_DEPTH = LENGTH / PAGE;
const PRQ_TIMEOUT_MS = 1000;
const [AUTO_DEV, MANUAL_DEV, HOST_DEV, OTHER_DEV] = ['0000:6a:01.0', '0000:6b:01.0', '0000:6c:01.0', '0000:6d:01.0'];

interface GuestVm {
  id: number;
  token: string;
  url: string;
  vrid: number;
}
const world: { auto?: GuestVm; manual?: GuestVm } = {};

const stack = useStack(async (s) => {
  const devices = join(s.dataDir, 'devices.json');
  writeFileSync(devices, JSON.stringify([AUTO_DEV, MANUAL_DEV, HOST_DEV, OTHER_DEV].map((bdf) => ({ bdf, pasidWidth: 20, wqDepth: 32 }))));
  await s.startHost({ DEVICES: devices, PRQ_DEPTH: String(PRQ_DEPTH), PRQ_TIMEOUT_MS: String(PRQ_TIMEOUT_MS) });
  await s.startVmm();
  for (const [key, dev, env] of [
    ['auto', AUTO_DEV, {}],
    ['manual', MANUAL_DEV, { DEBUG_PAGE_REQUESTS: 'ignore' }],
  ] as const) {
    const vm = await s.createVm({ name: key, memoryMiB: 32, devices: [dev] });
    const url = (await s.startGuest(vm, env)).url;
    const st = await guestCall<{ machine: { devices: Array<{ vrid: number }> } }>(url, 'GET', '/v1/status');
    world[key] = { ...vm, url, vrid: st.machine.devices[0].vrid };
  }
});

type Row = { seq: number; operation: string; args: Record<string, unknown>; result: unknown; errno: string | null; traceId: string };
/** An app's journal rows of `operation` after seq `since` (ids such as pPASIDs are reused across tests). */
const rowsOf = async (url: string, operation: string, since = 0): Promise<Row[]> =>
  (await http('GET', `${url}/v1/audit/events?operation=${operation}&afterSeq=${since}&limit=10000`, { token: AUDIT })).body as Row[];
/** The last seq of an app's journal now. */
const mark = async (url: string): Promise<number> => {
  const page = (await http('GET', `${url}/v1/audit/events?limit=10000&afterSeq=0`, { token: AUDIT })).body as Row[];
  let last = page.at(-1)?.seq ?? 0;
  for (let more = page.length; more === 10000; ) {
    const next = (await http('GET', `${url}/v1/audit/events?limit=10000&afterSeq=${last}`, { token: AUDIT })).body as Row[];
    more = next.length;
    last = next.at(-1)?.seq ?? last;
  }
  return last;
};
const pending = async (): Promise<{ pending: number; held: number; overflows: number }> => stack().hostAdmin().pageRequests();

/** A bound guest process with a written source and a destination it never touched. */
async function boundProcess(g: GuestVm, name: string, length = LENGTH) {
  const p = await processWithBuffers(g.url, name, length, (i) => i * 13 + 5);
  const t = newTraceparent();
  const { vpasid } = await guestCall<{ vpasid: number }>(g.url, 'POST', '/v1/sva/bind', { pid: p.pid, vrid: g.vrid }, t.traceparent);
  return { ...p, vpasid, ppasid: await ppasidOfTrace(stack().host.url, t.traceId) };
}

const submit = (g: GuestVm, pid: number, d: { src: number; dst: number; length: number }, traceparent?: string) =>
  guestCall<{ result: string; status: number; bytes: number; faultAddress?: number }>(g.url, 'POST', `/v1/processes/${pid}/submit`, { vrid: g.vrid, descriptor: { op: 'memmove', ...d } }, traceparent);

/** The manual guest's vIOMMU queue once it holds `n` groups. */
async function waitingGroups(vmm: VmmClient, n = 1): Promise<VirtualPageRequest[]> {
  return eventually(async () => {
    const all = await vmm.pageRequests();
    return all.length >= n ? all : undefined;
  }, 5000, `${n} page request group(s) in the guest queue`);
}

describe('page requests: a guest that handles them', () => {
  it('a 64 KiB memmove into never-touched memory completes: status 1, the right bytes, one group of one request per page', async () => {
    const g = world.auto!;
    const p = await boundProcess(g, 'copier');
    const t = newTraceparent();
    expect(await submit(g, p.pid, { src: p.src, dst: p.dst, length: LENGTH }, t.traceparent)).toEqual({ result: 'accepted', status: 1, bytes: LENGTH });
    expect((await readGuest(g.url, p.pid, p.dst, LENGTH)).equals(p.bytes)).toBe(true);
    const host = await hostRows(stack().host.url, t.traceId);
    const groups = host.filter((r) => r.operation === 'event.page-request');
    expect(groups).toHaveLength(1);
    expect((groups[0].args as { requests: unknown[] }).requests).toHaveLength(LENGTH / PAGE);
    expect(host.filter((r) => r.operation === 'event.page-response').map((r) => [r.args.code, r.args.reason])).toEqual([['success', 'response']]);
    const guestFaults = (await rowsOf(g.url, 'sva.page_fault')).filter((r) => r.traceId === t.traceId);
    expect(guestFaults.map((r) => r.result)).toEqual([{ pid: p.pid, code: 'success' }]);
    expect(await pending()).toMatchObject({ pending: 0, held: 0 });
  });

  it('a destination outside any mapping completes with status 2 after an invalid answer, and nothing is written', async () => {
    const g = world.auto!;
    const p = await boundProcess(g, 'stray', PAGE);
    const nowhere = 0x20_0000;
    const t = newTraceparent();
    expect(await submit(g, p.pid, { src: p.src, dst: nowhere, length: PAGE }, t.traceparent)).toMatchObject({ result: 'accepted', status: 2, bytes: 0, faultAddress: nowhere });
    const host = await hostRows(stack().host.url, t.traceId);
    expect(host.filter((r) => r.operation === 'event.page-response').map((r) => r.args.code)).toEqual(['invalid']);
    expect((await http('GET', `${g.url}/v1/processes/${p.pid}/memory?gva=${nowhere}&length=1`)).status).toBe(400);
    expect((await readGuest(g.url, p.pid, p.dst, PAGE)).equals(Buffer.alloc(PAGE))).toBe(true);
  });
});

describe('page requests: a guest whose vIOMMU the test drives', () => {
  it('a guest answering failure ends the copy with status 2, and the host received invalid', async () => {
    const g = world.manual!;
    const vmm = stack().vmmGuestClient(g);
    const p = await boundProcess(g, 'failing', PAGE);
    const since = await mark(stack().host.url);
    const done = submit(g, p.pid, { src: p.src, dst: p.dst, length: 64 });
    const [pr] = await waitingGroups(vmm);
    expect(pr).toMatchObject({ vrid: g.vrid, vpasid: p.vpasid, requests: [expect.objectContaining({ addr: p.dst, last: true })] });
    // Guest terms only: no cookie, no BDF, no pPASID.
    expect(Object.keys(pr).sort()).toEqual(['grpid', 'requests', 'seq', 'vpasid', 'vrid']);
    expect(pr.requests.map((r) => Object.keys(r).sort())).toEqual([['addr', 'last', 'perm']]);
    await vmm.pageResponse({ vrid: pr.vrid, vpasid: pr.vpasid, grpid: pr.grpid, code: 'failure' });
    expect(await done).toMatchObject({ status: 2, faultAddress: p.dst });
    const responses = await rowsOf(stack().host.url, 'fault.respond', since);
    expect(responses.map((r) => [r.args.code, r.errno])).toEqual([['invalid', null]]);
    const again = await http('POST', `${stack().vmmApp.url}/v1/vms/${g.id}/viommu/page-response`, { token: g.token, body: { vrid: pr.vrid, vpasid: pr.vpasid, grpid: pr.grpid, code: 'success' } });
    expect(again.body).toMatchObject({ errno: 'ENOENT' });
    await guestCall(g.url, 'POST', '/v1/sva/unbind', { pid: p.pid, vrid: g.vrid });
  });

  it('group-index reuse: two groups with the same grpid, answered in turn, each answer takes exactly one', async () => {
    const g = world.manual!;
    const vmm = stack().vmmGuestClient(g);
    const p = await boundProcess(g, 'reuse', 2 * PAGE);
    const since = await mark(stack().vmmApp.url);
    for (const offset of [0, PAGE]) {
      const done = submit(g, p.pid, { src: p.src, dst: p.dst + offset, length: 64 });
      const [pr] = await waitingGroups(vmm);
      expect(pr.grpid).toBe(0);
      await vmm.pageResponse({ vrid: pr.vrid, vpasid: pr.vpasid, grpid: 0, code: 'invalid' });
      expect(await done).toMatchObject({ status: 2, faultAddress: p.dst + offset });
    }
    const answers = (await rowsOf(stack().vmmApp.url, 'viommu.page_response', since)).filter((r) => r.errno === null);
    expect(answers.map((r) => r.result)).toEqual([
      { generation: 1, host: 'answered' },
      { generation: 2, host: 'answered' },
    ]);
    await guestCall(g.url, 'POST', '/v1/sva/unbind', { pid: p.pid, vrid: g.vrid });
  });

  it('unbind with a request waiting answers it invalid: the copy completes, the pPASID is freed, nothing waits on the host', async () => {
    const g = world.manual!;
    const p = await boundProcess(g, 'unbinder', PAGE);
    const done = submit(g, p.pid, { src: p.src, dst: p.dst, length: 64 });
    await waitingGroups(stack().vmmGuestClient(g));
    await guestCall(g.url, 'POST', '/v1/sva/unbind', { pid: p.pid, vrid: g.vrid });
    expect(await done).toMatchObject({ status: 2 });
    await eventually(async () => ((await pasidState(stack().host.url, p.ppasid)) === 'free' ? true : undefined), 5000, 'pPASID freed');
    expect(await pending()).toMatchObject({ pending: 0, held: 0 });
    expect(await stack().vmmGuestClient(g).pageRequests()).toEqual([]);
  });

  it(`a guest that never answers: after PRQ_TIMEOUT_MS (${PRQ_TIMEOUT_MS}) the kernel answers invalid, journaled as a timeout`, async () => {
    const g = world.manual!;
    const p = await boundProcess(g, 'sleeper', PAGE);
    const since = await mark(stack().host.url);
    expect(await submit(g, p.pid, { src: p.src, dst: p.dst, length: 64 })).toMatchObject({ status: 2, faultAddress: p.dst });
    const timeouts = (await rowsOf(stack().host.url, 'event.page-response', since)).filter((r) => r.args.reason === 'timeout');
    expect(timeouts.map((r) => [r.args.code, r.args.by])).toEqual([['invalid', 'kernel']]);
    // The guest still holds it; its late answer reaches the host as nothing (the host already answered).
    const [pr] = await stack().vmmGuestClient(g).pageRequests();
    await stack().vmmGuestClient(g).pageResponse({ vrid: pr.vrid, vpasid: pr.vpasid, grpid: pr.grpid, code: 'success' });
    const late = (await rowsOf(stack().vmmApp.url, 'viommu.page_response')).at(-1);
    expect(late?.result).toEqual({ generation: 1, host: 'EINVAL' });
    await guestCall(g.url, 'POST', '/v1/sva/unbind', { pid: p.pid, vrid: g.vrid });
  });
});

/** A host process owning a fault queue and a pass-through nested ioasid over an iova parent with a hole, on `bdf`. */
async function queueOwner(bdf: string) {
  const { pid, k, token } = await stack().hostProcess('fault-owner');
  const buf = await k.mmap(pid, 4 * PAGE);
  await k.writeMemory(pid, buf, Buffer.alloc(4 * PAGE, 0x11));
  const fd = await k.openIoasid();
  const queue = await k.createFaultQueue(fd);
  const parent = await k.alloc(fd);
  await k.bindPgtbl(fd, parent, { kind: 'iova' });
  await k.map(fd, parent, { iova: 0, hva: buf, length: 4 * PAGE, read: true, write: true });
  const nested = await k.alloc(fd);
  await k.bindPgtbl(fd, nested, { kind: 'nested', parent, faultQueue: queue });
  const dev = await k.openDevice(bdf);
  await k.allowIoasid(dev, { ioasidFd: fd, ioasid: nested, mode: 'pasid' });
  await k.wrmsr(pid, IA32_PASID_VALID + nested);
  const hole = 0x10_0000; // an IOVA the parent does not map: second stage not present, a page a request can fix
  /** A block-on-fault copy into the hole of `pages` pages; its record at IOVA 3 * PAGE + slot * 32 (mapped). */
  const copy = async (slot = 0, pages = 1) => {
    const r = await k.enqcmd(pid, dev, { op: 'memmove', src: 0, dst: hole, length: pages * PAGE, completion: 3 * PAGE + slot * 32, blockOnFault: true });
    expect(r).toEqual({ result: 'accepted' });
  };
  const record = async (slot = 0) => decodeCompletion(await k.readMemory(pid, buf + 3 * PAGE + slot * 32, 32));
  const groups = () => eventually(async () => {
    const all = await k.readFaultGroups(fd, queue);
    return all.length > 0 ? all : undefined;
  }, 5000, 'a group in the fault queue');
  return { pid, k, token, fd, queue, parent, nested, dev, copy, record, groups };
}

/** A host process doing SVA on OTHER_DEV: its mm bound (kind mm), allowed on the device, IA32_PASID set. */
async function svaProcess(comm: string) {
  const { pid, k } = await stack().hostProcess(comm);
  const fd = await k.openIoasid();
  const p = await k.alloc(fd);
  await k.bindPgtbl(fd, p, { kind: 'mm' });
  const dev = await k.openDevice(OTHER_DEV);
  await k.allowIoasid(dev, { ioasidFd: fd, ioasid: p, mode: 'pasid' });
  await k.wrmsr(pid, IA32_PASID_VALID + p);
  return { pid, k, p, dev };
}

describe('fault queues of a host process (the iommufd FAULT object over REST)', () => {
  it('cookies: unknown and used ones are EINVAL; a bad code is EINVAL and leaves the group pending; another process gets EBADF/ENOENT', async () => {
    const o = await queueOwner(HOST_DEV);
    try {
      await o.copy();
      const [g] = await o.groups();
      expect(g).toMatchObject({ bdf: HOST_DEV, pasid: o.nested, requests: [{ addr: 0x10_0000, perm: { read: false, write: true, exec: false, privileged: false }, last: true }] });
      const respond = (cookie: number, code: string, client: HostKernelClient = o.k, fd = o.fd) => client.respondFault(fd, o.queue, cookie, code as 'success').then(() => 'ok', (e: { errno: string }) => e.errno);
      expect(await respond(g.cookie + 1000, 'success')).toBe('EINVAL');
      expect(await respond(g.cookie, 'failure')).toBe('EINVAL');
      expect((await stack().hostAdmin().pageRequests()).groups).toEqual([expect.objectContaining({ ppasid: o.nested, grpid: g.grpid, handler: 'queue', owner: o.pid })]);
      const other = await stack().hostProcess('intruder');
      expect(await respond(g.cookie, 'invalid', other.k)).toBe('EBADF');
      expect(await other.k.readFaultGroups(await other.k.openIoasid(), o.queue).then(() => 'ok', (e: { errno: string }) => e.errno)).toBe('ENOENT');
      expect(await o.k.destroyFaultQueue(o.fd, o.queue).then(() => 'ok', (e: { errno: string }) => e.errno)).toBe('EBUSY');
      expect(await respond(g.cookie, 'invalid')).toBe('ok');
      expect(await respond(g.cookie, 'invalid')).toBe('EINVAL');
      await eventually(async () => ((await o.record()).status !== 0 ? true : undefined), 5000, 'the completion record');
      expect(await o.record()).toMatchObject({ status: 2, faultAddress: 0x10_0000 });
    } finally {
      await o.k.killProcess(o.pid);
    }
  });

  type Teardown = (o: Awaited<ReturnType<typeof queueOwner>>) => Promise<unknown>;
  const teardowns: Array<[string, Teardown]> = [
    ['DESTROY of the page table', (o) => o.k.destroy(o.fd, o.nested)],
    ['DISALLOW', (o) => o.k.disallowIoasid(o.dev, { ioasidFd: o.fd, ioasid: o.nested })],
    ['closing the device fd', (o) => o.k.closeFd(o.dev)],
  ];
  it.each(teardowns)('%s with a group pending answers it invalid, the descriptor completes, the PASID is freed', async (_name, teardown) => {
    const o = await queueOwner(HOST_DEV);
    try {
      const since = await mark(stack().host.url);
      await o.copy(0);
      await eventually(async () => ((await pending()).pending === 1 ? true : undefined), 5000, 'the first group');
      await o.copy(1);
      await eventually(async () => ((await pending()).pending === 2 ? true : undefined), 5000, 'the second group');
      expect(await o.k.readFaultGroups(o.fd, o.queue)).toHaveLength(2); // both read: the teardown answers them anyway
      await o.copy(2);
      await eventually(async () => ((await pending()).pending === 3 ? true : undefined), 5000, 'a third group, never read');
      await teardown(o);
      expect([(await o.record(0)).status, (await o.record(1)).status, (await o.record(2)).status]).toEqual([2, 2, 2]);
      expect(await pending()).toMatchObject({ pending: 0, held: 0 });
      const answers = (await rowsOf(stack().host.url, 'event.page-response', since)).filter((r) => r.args.ppasid === o.nested);
      expect(answers.map((r) => [r.args.code, r.args.by, r.args.reason])).toEqual(Array.from({ length: 3 }, () => ['invalid', 'kernel', 'teardown']));
    } finally {
      await o.k.killProcess(o.pid);
    }
    await eventually(async () => ((await pasidState(stack().host.url, o.nested)) === 'free' ? true : undefined), 5000, 'the PASID freed');
  });

  it('host SVA: the kernel answers its own process — mmap\'d never-written memory succeeds, unmapped memory ends with status 2', async () => {
    const { pid, k, p, dev } = await svaProcess('sva');
    const buf = await k.mmap(pid, 3 * PAGE);
    const untouched = await k.mmap(pid, 4 * PAGE);
    const bytes = Buffer.from(Array.from({ length: 4 * PAGE }, (_, i) => (i * 7) & 0xff));
    const src = await k.mmap(pid, 4 * PAGE);
    await k.writeMemory(pid, src, bytes);
    await k.writeMemory(pid, buf, Buffer.alloc(PAGE));
    const since = await mark(stack().host.url);
    const recordAt = async (at: number) => eventually(async () => {
      const r = decodeCompletion(await k.readMemory(pid, at, 32));
      return r.status !== 0 ? r : undefined;
    });
    await k.enqcmd(pid, dev, { op: 'memmove', src, dst: untouched, length: 4 * PAGE, completion: buf, blockOnFault: true });
    expect(await recordAt(buf)).toMatchObject({ status: 1, bytesCompleted: 4 * PAGE });
    expect((await k.readMemory(pid, untouched, 4 * PAGE)).equals(bytes)).toBe(true);
    await k.enqcmd(pid, dev, { op: 'memmove', src, dst: 0x1000_0000, length: 64, completion: buf + 32, blockOnFault: true });
    expect(await recordAt(buf + 32)).toMatchObject({ status: 2, faultAddress: 0x1000_0000 });
    const answers = (await rowsOf(stack().host.url, 'event.page-response', since)).filter((r) => r.args.ppasid === p);
    expect(answers.map((r) => [r.args.code, r.args.by, r.args.reason])).toEqual([
      ['success', 'kernel', 'response'],
      ['invalid', 'kernel', 'response'],
    ]);
    await k.killProcess(pid);
  });

  it(`a full host queue (PRQ_DEPTH ${PRQ_DEPTH}) answers success on its own; the device retries later and the copy still completes`, async () => {
    const holder = await queueOwner(HOST_DEV);
    await holder.copy(0, 4); // 4 requests held, unanswered
    const [held] = await holder.groups();
    const { pid, k, p, dev } = await svaProcess('big-copy');
    const src = await k.mmap(pid, LENGTH);
    const dst = await k.mmap(pid, LENGTH);
    const done = await k.mmap(pid, PAGE);
    const bytes = Buffer.from(Array.from({ length: LENGTH }, (_, i) => (i * 29 + 1) & 0xff));
    await k.writeMemory(pid, src, bytes);
    await k.writeMemory(pid, done, Buffer.alloc(32));
    const since = await mark(stack().host.url);
    await k.enqcmd(pid, dev, { op: 'memmove', src, dst, length: LENGTH, completion: done, blockOnFault: true });
    await eventually(async () => ((await pending()).overflows > 0 ? true : undefined), 5000, 'an overflow');
    await holder.k.respondFault(holder.fd, holder.queue, held.cookie, 'invalid');
    const record = await eventually(async () => {
      const r = decodeCompletion(await k.readMemory(pid, done, 32));
      return r.status !== 0 ? r : undefined;
    }, 5000, 'the big copy');
    expect(record).toMatchObject({ status: 1, bytesCompleted: LENGTH });
    expect((await k.readMemory(pid, dst, LENGTH)).equals(bytes)).toBe(true);
    const overflow = (await rowsOf(stack().host.url, 'event.page-response', since)).filter((r) => r.args.ppasid === p).map((r) => [r.args.reason, r.args.code]);
    expect(overflow[0]).toEqual(['overflow', 'success']);
    expect(overflow.at(-1)).toEqual(['response', 'success']);
    await k.killProcess(pid);
    await holder.k.killProcess(holder.pid);
  });
});

describe('the VMM dies with a request waiting', () => {
  it('SIGKILL of the VMM: the host answers it invalid, the descriptor completes, the pPASID is freed, nothing waits', async () => {
    const s = stack();
    const g = world.manual!;
    const p = await boundProcess(g, 'orphan', PAGE);
    const since = await mark(s.host.url);
    void submit(g, p.pid, { src: p.src, dst: p.dst, length: 64 }).catch(() => undefined);
    await waitingGroups(s.vmmGuestClient(g));
    s.vmmApp.signal('SIGKILL');
    await s.vmmApp.exited;
    await eventually(async () => ((await pasidState(s.host.url, p.ppasid)) === 'free' ? true : undefined), 5000, 'pPASID freed');
    expect(await pending()).toMatchObject({ pending: 0, held: 0 });
    const answers = (await rowsOf(s.host.url, 'event.page-response', since)).filter((r) => r.args.ppasid === p.ppasid);
    expect(answers.map((r) => [r.args.code, r.args.by, r.args.reason])).toEqual([['invalid', 'kernel', 'teardown']]);
    const completions = (await rowsOf(s.host.url, 'event.device-completion', since)).filter((r) => r.args.ppasid === p.ppasid);
    expect(completions.map((r) => r.args.status)).toEqual([2]);
  });
});
