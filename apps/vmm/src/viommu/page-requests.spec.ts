import { HandTimers } from '@app/shared/hand-timers.testing';
import { VMM_FAULT_REASONS } from './viommu.constants';
import { cacheWait, CLEAR, closeHosts, DIR_A, DIR_B, DISALLOW, faultingCopy, FL, setup, TABLE_A, TABLE_B, UNMAP_PASID, VRID_A, VRID_B, writeEntry } from '../../../../stack/fixtures/vm';

afterEach(closeHosts);

const GVA = 0x7f00_0000_0000;
const RESPOND = 'fault.respond';
/** The three pages faultingCopy touches: source (read), destination and completion record (written). */
const REQUESTS = [
  { addr: GVA, perm: { read: true, write: false, exec: false, privileged: false }, last: false },
  { addr: GVA + 0x1000, perm: { read: false, write: true, exec: false, privileged: false }, last: false },
  { addr: GVA + 0x2000, perm: { read: false, write: true, exec: false, privileged: false }, last: true },
];

async function bound(opts: Parameters<typeof setup>[0] = {}) {
  const s = await setup(opts);
  await writeEntry(s.vm, DIR_A, TABLE_A, 5, FL());
  await s.vm.viommu.invalidate(cacheWait(5));
  return s;
}

describe('vIOMMU page requests: the VM fault queue, relayed to the guest in guest terms', () => {
  it('a host group reaches the guest queue as vrid, vPASID, grpid and pages — no pPASID, no cookie; its answer reaches the host once', async () => {
    const { host, vm } = await bound();
    await faultingCopy(host, vm, VRID_A, 5, GVA);
    const pulled = await vm.viommu.pullPageRequests();
    expect(pulled.groups).toEqual([{ grpid: 0, requests: 3, vrid: VRID_A, vpasid: 5, outcome: 'forwarded', seq: 1 }]);
    expect(pulled.forwarded).toEqual([{ seq: 1, vrid: VRID_A, vpasid: 5, grpid: 0, requests: REQUESTS }]);
    expect(vm.viommu.pageRequests()).toEqual(pulled.forwarded);
    const ppasid = vm.viommu.bindings()[0].ioasid;
    expect(JSON.stringify(vm.viommu.pageRequests())).not.toMatch(new RegExp(`cookie|bdf|"pasid"|:${ppasid}[,}]`));
    const mark = await host.mark();
    expect(await vm.viommu.pageResponse({ vrid: VRID_A, vpasid: 5, grpid: 0, code: 'success' })).toEqual({ generation: 1, host: 'answered' });
    const [row] = await host.calledRows(mark);
    expect(row).toMatchObject({ operation: RESPOND, errno: null, args: { fd: vm.handles.ioasidFd, faultQueue: vm.handles.faultQueue, code: 'success' } });
    await expect(vm.viommu.pageResponse({ vrid: VRID_A, vpasid: 5, grpid: 0, code: 'success' })).rejects.toMatchObject({ errno: 'ENOENT' });
    expect(vm.viommu.pageRequests()).toEqual([]);
  });

  it('failure (Response Failure) reaches the host as invalid: PRI of the function stays on for its other users', async () => {
    const { host, vm } = await bound();
    await faultingCopy(host, vm, VRID_A, 5, GVA);
    await vm.viommu.pullPageRequests();
    const mark = await host.mark();
    await vm.viommu.pageResponse({ vrid: VRID_A, vpasid: 5, grpid: 0, code: 'failure' });
    expect((await host.calledRows(mark)).map((r) => [r.operation, (r.args as { code: string }).code])).toEqual([[RESPOND, 'invalid']]);
    expect(host.state().pageRequests).toEqual([]);
  });

  it('a reused group index: two groups of one (vrid, vPASID, grpid) waiting, each answer takes exactly one, oldest first', async () => {
    const timers = new HandTimers();
    const { host, vm } = await bound({ timers });
    await faultingCopy(host, vm, VRID_A, 5, GVA);
    await vm.viommu.pullPageRequests();
    timers.fire(); // PRQ_TIMEOUT_MS: the host answers the first group itself, and the device frees index 0
    await faultingCopy(host, vm, VRID_A, 5, GVA + 0x10_0000);
    await vm.viommu.pullPageRequests();
    expect(vm.viommu.pageRequests().map((r) => [r.seq, r.grpid, r.requests[0].addr])).toEqual([
      [1, 0, GVA],
      [2, 0, GVA + 0x10_0000],
    ]);
    const answer = { vrid: VRID_A, vpasid: 5, grpid: 0, code: 'success' } as const;
    expect(await vm.viommu.pageResponse(answer)).toEqual({ generation: 1, host: 'EINVAL' }); // the host answered it already
    expect(vm.viommu.pageRequests().map((r) => r.seq)).toEqual([2]);
    expect(await vm.viommu.pageResponse(answer)).toEqual({ generation: 2, host: 'answered' });
    await expect(vm.viommu.pageResponse(answer)).rejects.toMatchObject({ errno: 'ENOENT' });
  });

  it('a full guest queue: the group is answered success (the device retries later), counted and reported as a fault', async () => {
    const { host, vm } = await bound({ timers: new HandTimers(), guestPrqDepth: 2 });
    await faultingCopy(host, vm, VRID_A, 5, GVA);
    const mark = await host.mark();
    const pulled = await vm.viommu.pullPageRequests();
    expect(pulled.groups).toEqual([{ grpid: 0, requests: 3, vrid: VRID_A, vpasid: 5, outcome: 'overflow' }]);
    expect((await host.calledRows(mark)).map((r) => [r.operation, (r.args as { code?: string }).code])).toEqual([['fault.read', undefined], [RESPOND, 'success']]);
    expect(pulled.faults).toEqual([expect.objectContaining({ vrid: VRID_A, vpasid: 5, code: VMM_FAULT_REASONS['vmm-prq-overflow'].code, errno: 'EAGAIN' })]);
    expect(vm.viommu.faults()).toEqual(pulled.faults);
    expect(vm.viommu.pageRequests()).toEqual([]);
  });

  it('unbind of the vPASID answers its waiting groups invalid before UNMAP_PASID', async () => {
    const { host, vm } = await bound();
    await faultingCopy(host, vm, VRID_A, 5, GVA);
    await vm.viommu.pullPageRequests();
    const mark = await host.mark();
    await writeEntry(vm, DIR_A, TABLE_A, 5, CLEAR);
    await vm.viommu.invalidate(cacheWait(5));
    const ops = (await host.calledRows(mark)).map((r) => r.operation);
    expect(ops.slice(0, 2)).toEqual([RESPOND, UNMAP_PASID]);
    expect((await host.calledRows(mark))[0].args).toMatchObject({ code: 'invalid' });
    expect(vm.viommu.pageRequests()).toEqual([]);
    expect(host.state().pageRequests).toEqual([]);
  });

  it("a device leaving a vPASID answers that device's waiting groups first; the other device's stay", async () => {
    const { host, vm } = await bound();
    await writeEntry(vm, DIR_B, TABLE_B, 5, FL());
    await vm.viommu.invalidate(cacheWait(5));
    await faultingCopy(host, vm, VRID_B, 5, GVA);
    await faultingCopy(host, vm, VRID_A, 5, GVA + 0x10_0000);
    await vm.viommu.pullPageRequests();
    expect(vm.viommu.pageRequests().map((r) => r.vrid).sort((a, b) => a - b)).toEqual([VRID_A, VRID_B]);
    const mark = await host.mark();
    await writeEntry(vm, DIR_B, TABLE_B, 5, CLEAR);
    await vm.viommu.invalidate(cacheWait(5));
    expect((await host.calledRows(mark)).map((r) => r.operation)).toEqual([RESPOND, DISALLOW]);
    expect(vm.viommu.pageRequests().map((r) => r.vrid)).toEqual([VRID_A]);
  });

  it('VM teardown (close) answers every waiting group invalid before the bindings go', async () => {
    const { host, vm } = await bound();
    await faultingCopy(host, vm, VRID_A, 5, GVA);
    await vm.viommu.pullPageRequests();
    const mark = await host.mark();
    await vm.viommu.close();
    expect((await host.calledRows(mark)).map((r) => r.operation)[0]).toBe(RESPOND);
    expect(host.state().pageRequests).toEqual([]);
    await expect(vm.viommu.invalidate(cacheWait(5))).rejects.toMatchObject({ errno: 'ENODEV' });
  });
});
