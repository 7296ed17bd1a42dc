// /metrics counts what happened: the host kernel's and the VMM's metrics over the real stack, read before and
// after known operations, change by exactly what those operations did (derived from their own results and rows).
import { HandTimers } from '@app/shared/hand-timers.testing';
import { AppMetrics, journalMetrics } from '@app/shared/metrics/metrics';
import { hostMetrics } from '../apps/host-kernel/src/host-metrics';
import { hwOps } from '../apps/host-kernel/src/hw/hw.ops';
import { vmmMetrics } from '../apps/vmm/src/vmm-metrics';
import { InProcessStack } from './in-process-stack';
import { InProcessVmm } from './vmm.in-process';

const DSA0 = '0000:6a:01.0';

type Reading = (name: string, labels?: Record<string, string>) => number;

/** One scrape, as a lookup of a sample by name and labels (absent = 0, as Prometheus reads a missing series). */
async function scrape(m: AppMetrics): Promise<Reading> {
  const json = await m.registry.getMetricsAsJSON();
  return (name, labels = {}) => {
    const metric = json.find((x) => x.name === `ioasid_lab_${name}`);
    if (!metric) throw new Error(`no metric ioasid_lab_${name}`);
    const v = metric.values.find((s) => Object.entries(labels).every(([k, val]) => String(s.labels[k]) === val));
    return v ? v.value : 0;
  };
}

describe('metrics', () => {
  let stack: InProcessStack;
  let host: AppMetrics;
  let vmm: AppMetrics;

  beforeEach(async () => {
    stack = await InProcessStack.create();
    host = new AppMetrics('host-kernel');
    vmm = new AppMetrics('vmm');
    journalMetrics(host, stack.host.journal.store);
    journalMetrics(vmm, stack.vmm.journal.store);
    hostMetrics(host, stack.host.kernel);
    vmmMetrics(vmm, stack.vmm);
  });

  afterEach(() => stack.close());

  it('count a guest SVA bind, a submission and an unbind exactly: PASIDs, ioasids, routes, journal rows, descriptors, VMs', async () => {
    const vm = await stack.createVm({ name: 'm', devices: [DSA0] });
    const guest = await stack.bootGuest(vm);
    const vrid = guest.status().machine?.devices[0].vrid as number;
    const { pid } = await stack.console(vm.id, (g) => g.createProcess('p'));
    const { gva: src } = await stack.console(vm.id, (g) => g.mmap(pid, 8192));
    const { gva: dst } = await stack.console(vm.id, (g) => g.mmap(pid, 8192));
    await stack.console(vm.id, (g) => g.writeMemory(pid, src, Buffer.alloc(8192, 7)));
    const before = await scrape(host);
    const vmmBefore = await scrape(vmm);
    const hostRowsBefore = (await stack.journals()).host.length;
    const vmmRowsBefore = (await stack.journals()).vmm.length;

    await stack.console(vm.id, (g) => g.bind(pid, vrid));
    const bound = await scrape(host);
    const boundVmm = await scrape(vmm);
    expect(bound('pasids', { state: 'allocated' }) - before('pasids', { state: 'allocated' })).toBe(1);
    expect(bound('pasids', { state: 'free' }) - before('pasids', { state: 'free' })).toBe(-1);
    expect(bound('ioasids', { state: 'bound' }) - before('ioasids', { state: 'bound' })).toBe(1);
    expect(bound('routes', { kind: 'pasid', blocked: 'false' }) - before('routes', { kind: 'pasid', blocked: 'false' })).toBe(1);
    expect(bound('kvm_vpasid_mappings') - before('kvm_vpasid_mappings')).toBe(1);
    expect(boundVmm('viommu_shadow_bindings', { stale: 'false' }) - vmmBefore('viommu_shadow_bindings', { stale: 'false' })).toBe(1);

    // Every row the bind wrote is counted once, under its operation and outcome.
    const { host: hostRows, vmm: vmmRows } = await stack.journals();
    const newHost = hostRows.slice(hostRowsBefore);
    for (const op of new Set(newHost.map((r) => r.operation))) {
      const n = newHost.filter((r) => r.operation === op && r.errno === null).length;
      expect(bound('journal_rows_total', { operation: op, outcome: 'ok' }) - before('journal_rows_total', { operation: op, outcome: 'ok' })).toBe(n);
    }
    expect(newHost.filter((r) => r.operation === 'kvm.map_pasid')).toHaveLength(1);
    // The descriptors the guest queued, by type, as its viommu.invalidate rows name them.
    const queued = vmmRows.slice(vmmRowsBefore).filter((r) => r.operation === 'viommu.invalidate' && r.errno === null).flatMap((r) => (r.args as { descriptors: Array<{ type: string }> }).descriptors);
    expect(queued.length).toBeGreaterThan(0);
    for (const type of ['pasid-cache', 'piotlb', 'wait']) {
      const n = queued.filter((d) => d.type === type).length;
      expect(boundVmm('viommu_invalidation_descriptors_total', { type }) - vmmBefore('viommu_invalidation_descriptors_total', { type })).toBe(n);
    }

    // A submission: the IOTLB counters are the IOMMU's own, and the work queue counts one completed descriptor.
    const iotlb = { ...stack.host.kernel.iommu.iotlb.stats };
    const done = await stack.console(vm.id, (g) => g.submit(pid, { vrid, descriptor: { op: 'memmove', src, dst, length: 8192 } }));
    expect(done).toMatchObject({ result: 'accepted', status: 1 });
    const copied = await scrape(host);
    const after = stack.host.kernel.iommu.iotlb.stats;
    expect(after.misses - iotlb.misses).toBeGreaterThan(0);
    expect(copied('iotlb_misses_total') - bound('iotlb_misses_total')).toBe(after.misses - iotlb.misses);
    expect(copied('iotlb_hits_total') - bound('iotlb_hits_total')).toBe(after.hits - iotlb.hits);
    expect(copied('device_descriptors_completed_total', { bdf: DSA0 }) - bound('device_descriptors_completed_total', { bdf: DSA0 })).toBe(1);
    expect(copied('device_descriptors_submitted_total', { bdf: DSA0 }) - bound('device_descriptors_submitted_total', { bdf: DSA0 })).toBe(1);
    // dst was never touched: the copy went through page requests, each group answered success — every answer is an
    // event.page-response row (a child of the VMM's fault.respond when the guest answered).
    const submitRows = (await stack.journals()).host.slice(newHost.length + hostRowsBefore);
    const answered = submitRows.filter((r) => r.operation === 'event.page-response' && (r.args as { code: string }).code === 'success' && (r.args as { reason: string }).reason === 'response').length;
    expect(answered).toBeGreaterThan(0);
    expect(copied('page_requests_total', { code: 'success', reason: 'response' }) - bound('page_requests_total', { code: 'success', reason: 'response' })).toBe(answered);
    expect(copied('page_requests_pending')).toBe(0);

    await stack.console(vm.id, (g) => g.unbind(pid, vrid));
    const unbound = await scrape(host);
    expect(unbound('pasids', { state: 'allocated' })).toBe(before('pasids', { state: 'allocated' }));
    expect(unbound('routes', { kind: 'pasid', blocked: 'false' })).toBe(before('routes', { kind: 'pasid', blocked: 'false' }));
    expect(unbound('journal_rows_total', { operation: 'kvm.unmap_pasid', outcome: 'ok' }) - bound('journal_rows_total', { operation: 'kvm.unmap_pasid', outcome: 'ok' })).toBe(1);
    expect((await scrape(vmm))('vms', { state: 'running' })).toBe(1);
  });

  it('count IOMMU faults by VT-d reason and refused calls under their errno', async () => {
    const before = await scrape(host);
    const admin = { kind: 'admin' } as const;
    // Two DMAs on a PASID with no route, and one through the RID (the device has no RID route either).
    const reasons: string[] = [];
    for (const pasid of [5, 6, undefined]) {
      const r = await stack.host.dispatcher.exec(hwOps.dma, admin, { bdf: DSA0, pasid, address: 0x1000, length: 8, write: false });
      if (r.ok) throw new Error('a DMA with no route translated');
      reasons.push(r.fault.reason);
    }
    // A refused call: DESTROY of an ioasid that does not exist, through a process's own /dev/ioasid fd.
    const p = await stack.hostProcess('faulty');
    const fd = await p.k.openIoasid();
    await expect(p.k.destroy(fd, 12345)).rejects.toMatchObject({ errno: 'ENOENT' });
    const after = await scrape(host);
    for (const reason of new Set(reasons)) {
      expect(after('iommu_faults_total', { reason }) - before('iommu_faults_total', { reason })).toBe(reasons.filter((x) => x === reason).length);
    }
    expect(after('journal_rows_total', { operation: 'ioasid.destroy', outcome: 'ENOENT' }) - before('journal_rows_total', { operation: 'ioasid.destroy', outcome: 'ENOENT' })).toBe(1);
    expect(after('processes', { state: 'running' }) - before('processes', { state: 'running' })).toBe(1);
  });

  it("count each process's usage of the limited resources, exactly as the admin view and its own calls say", async () => {
    const admin = { kind: 'admin' } as const;
    const before = await scrape(host);
    const p = await stack.hostProcess('limited');
    const fd = await p.k.openIoasid();
    const ioasids = [await p.k.alloc(fd), await p.k.alloc(fd)];
    await p.k.bindPgtbl(fd, ioasids[0], { kind: 'iova' });
    const length = 3 * 4096;
    const hva = await p.k.mmap(p.pid, length);
    await p.k.writeMemory(p.pid, hva, Buffer.alloc(length, 1));
    await p.k.map(fd, ioasids[0], { iova: 0, hva, length, read: true, write: true });
    const after = await scrape(host);
    const pid = String(p.pid);
    const view = await stack.host.dispatcher.exec(hwOps.limits, admin, { pid: p.pid });
    expect(view.processes[0].usage).toEqual({ pasids: ioasids.length, pinnedBytes: length, residentBytes: length, fds: 1 });
    for (const [resource, n] of Object.entries(view.processes[0].usage)) expect([resource, after('host_process_usage', { pid, resource })]).toEqual([resource, n]);
    for (const [resource, n] of Object.entries(view.limits)) expect([resource, after('host_limit', { resource })]).toEqual([resource, n]);
    expect(after('host_open_files') - before('host_open_files')).toBe(1);
    // The process exits: its series go, its file is closed.
    await p.k.killProcess(p.pid);
    const gone = await scrape(host);
    expect(gone('host_process_usage', { pid, resource: 'fds' })).toBe(0);
    expect(gone('host_open_files')).toBe(before('host_open_files'));
  });
});

describe('metrics of the guest page request queue (VMM)', () => {
  const open: InProcessStack[] = [];
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
  });

  /** A VM whose guest leaves page requests alone, a bound process, and a copy of `length` bytes into memory it never touched. */
  async function waitingCopy(opts: { guestPrqDepth?: number }, length: number) {
    const timers = new HandTimers();
    const stack = await InProcessStack.create({ guestPageRequests: 'ignore', timers, accel: { maxPolls: 100_000 }, ...opts });
    open.push(stack);
    const m = new AppMetrics('vmm');
    vmmMetrics(m, stack.vmm);
    const vm = await stack.createVm({ name: 'pr', devices: [DSA0] });
    const guest = await stack.bootGuest(vm);
    const vrid = guest.status().machine?.devices[0].vrid as number;
    const { pid } = await stack.console(vm.id, (g) => g.createProcess('p'));
    const { gva: src } = await stack.console(vm.id, (g) => g.mmap(pid, length));
    await stack.console(vm.id, (g) => g.writeMemory(pid, src, Buffer.alloc(length, 3)));
    await stack.console(vm.id, (g) => g.bind(pid, vrid));
    const { gva: dst } = await stack.console(vm.id, (g) => g.mmap(pid, length));
    const done = stack.console(vm.id, (g) => g.submit(pid, { vrid, descriptor: { op: 'memmove', src, dst, length } }));
    return { stack, m, vm, done, viommu: new InProcessVmm(stack.vmm, stack.operator, vm.id, vm.token) };
  }

  /** Lets the stack run until `cond` holds (the device and the relay work on their own turns). */
  async function until(cond: () => Promise<boolean>): Promise<void> {
    for (let i = 0; i < 1000 && !(await cond()); i++) await new Promise((r) => setImmediate(r));
    expect(await cond()).toBe(true);
  }

  it('count the groups waiting for the guest, per VM, as its vIOMMU lists them; answered, they go', async () => {
    const x = await waitingCopy({}, 2 * 4096);
    const vm = String(x.vm.id);
    await until(async () => (await x.viommu.pageRequests()).length === 1);
    const [pr] = await x.viommu.pageRequests();
    expect((await scrape(x.m))('viommu_page_requests_waiting', { vm })).toBe(1);
    await x.viommu.pageResponse({ vrid: pr.vrid, vpasid: pr.vpasid, grpid: pr.grpid, code: 'invalid' });
    await x.done;
    expect((await scrape(x.m))('viommu_page_requests_waiting', { vm })).toBe(0);
  });

  it('count a group the guest queue could not take as an overflow of that VM', async () => {
    // A queue of one request; the copy's group asks for two pages.
    const x = await waitingCopy({ guestPrqDepth: 1 }, 2 * 4096);
    const vm = String(x.vm.id);
    await until(async () => (await scrape(x.m))('viommu_page_request_overflows_total', { vm }) === 1);
    expect(await x.viommu.pageRequests()).toEqual([]);
    expect((await scrape(x.m))('viommu_page_requests_waiting', { vm })).toBe(0);
    // The device retries after its back-off (never fired here); the submission is left to end with the stack.
    x.done.catch(() => undefined);
  });
});
