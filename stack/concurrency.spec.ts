// Per-process (guest) and per-vPASID (VMM) locking on the whole in-process stack: binds of different processes
// overlap, in one VM and across VMs; one process's steps stay in order. The VMM's door to the host holds the
// MAP_PASID of the first bind until the test lets it go, so what completes meanwhile is what did not wait for it.
import type { HostKernelPort } from '../apps/vmm/src/host-kernel.port';
import { holdWhen, type HoldWhen, settled } from './fixtures/hold-when';
import { InProcessStack, type VmHandle } from './in-process-stack';

const DSA0 = '0000:6a:01.0';
const DSA1 = '0000:6b:01.0';

interface Bed {
  stack: InProcessStack;
  gate: HoldWhen<HostKernelPort>;
  vrid(vm: VmHandle): number;
  proc(vm: VmHandle, name: string): Promise<number>;
}

const beds: InProcessStack[] = [];
afterEach(async () => {
  for (const s of beds.splice(0)) await s.close();
});

async function bed(): Promise<Bed> {
  let gate: HoldWhen<HostKernelPort> | null = null;
  const stack = await InProcessStack.create({ wrapHost: (port) => (gate = holdWhen(port)).port });
  beds.push(stack);
  return {
    stack,
    gate: gate as unknown as HoldWhen<HostKernelPort>,
    vrid: (vm) => stack.guests.get(vm.id)?.status().machine?.devices[0].vrid as number,
    proc: async (vm, name) => (await stack.console(vm.id, (g) => g.createProcess(name))).pid,
  };
}


/** Holds the first MAP_PASID that reaches the host, only that one. */
function holdFirstMapPasid(gate: HoldWhen<HostKernelPort>): void {
  let armed = true;
  gate.hold = (method) => {
    if (method !== 'mapPasid' || !armed) return false;
    armed = false;
    return true;
  };
}

describe('binds and unbinds run per process and per vPASID, not per VM', () => {
  it('two processes of one VM: the second bind completes while the first one’s MAP_PASID is held on the host', async () => {
    const b = await bed();
    const vm = await b.stack.createVm({ name: 'one', devices: [DSA0] });
    await b.stack.bootGuest(vm);
    const [p1, p2] = [await b.proc(vm, 'p1'), await b.proc(vm, 'p2')];
    holdFirstMapPasid(b.gate);
    const first = b.stack.console(vm.id, (g) => g.bind(p1, b.vrid(vm)));
    const firstDone = settled(first);
    const held = await b.gate.reached('mapPasid');
    const second = await b.stack.console(vm.id, (g) => g.bind(p2, b.vrid(vm)));
    expect(firstDone.done).toBe(false);
    held.release();
    const { vpasid } = await first;
    // The first bind took the lower vPASID (it allocated first); the second one finished first.
    expect(second.vpasid).toBeGreaterThan(vpasid);
    expect(b.stack.vmm.vms.running(vm.id).viommu.bindings().map((x) => x.vpasid).sort()).toEqual([vpasid, second.vpasid]);
  });

  it('first binds of two processes at once on a fresh device: both entries land in the one PASID table they share', async () => {
    const b = await bed();
    const vm = await b.stack.createVm({ name: 'fresh', devices: [DSA0] });
    await b.stack.bootGuest(vm);
    const [p1, p2] = [await b.proc(vm, 'p1'), await b.proc(vm, 'p2')];
    // Both vPASIDs fall in directory entry 0, whose table neither bind has linked yet.
    const [r1, r2] = await Promise.all([p1, p2].map((pid) => b.stack.console(vm.id, (g) => g.bind(pid, b.vrid(vm)))));
    expect(b.stack.vmm.vms.running(vm.id).viommu.bindings().map((x) => x.vpasid).sort()).toEqual([r1.vpasid, r2.vpasid].sort());
  });

  it('two VMs: a bind in the second completes while the first VM’s bind is held', async () => {
    const b = await bed();
    const vmA = await b.stack.createVm({ name: 'a', devices: [DSA0] });
    const vmB = await b.stack.createVm({ name: 'b', devices: [DSA1] });
    await b.stack.bootGuest(vmA);
    await b.stack.bootGuest(vmB);
    const [pa, pb] = [await b.proc(vmA, 'pa'), await b.proc(vmB, 'pb')];
    holdFirstMapPasid(b.gate);
    const first = b.stack.console(vmA.id, (g) => g.bind(pa, b.vrid(vmA)));
    const firstDone = settled(first);
    const held = await b.gate.reached('mapPasid');
    await b.stack.console(vmB.id, (g) => g.bind(pb, b.vrid(vmB)));
    expect(firstDone.done).toBe(false);
    held.release();
    await first;
  });

  it('one process: an unbind issued during its bind waits for it, and its host calls come after the bind’s', async () => {
    const b = await bed();
    const vm = await b.stack.createVm({ name: 'one', devices: [DSA0] });
    await b.stack.bootGuest(vm);
    const p = await b.proc(vm, 'p');
    holdFirstMapPasid(b.gate);
    const bind = b.stack.console(vm.id, (g) => g.bind(p, b.vrid(vm)));
    const held = await b.gate.reached('mapPasid');
    const mark = b.gate.passed.length;
    const unbind = b.stack.console(vm.id, (g) => g.unbind(p, b.vrid(vm)));
    const unbindDone = settled(unbind);
    await b.stack.settle();
    expect(unbindDone.done).toBe(false);
    expect(b.gate.passed.slice(mark)).toEqual([]);
    held.release();
    await bind;
    await unbind;
    expect(b.gate.passed.slice(mark)).toEqual(['mapPasid', 'unmapPasid', 'disallowIoasid', 'destroy']);
    expect(b.stack.vmm.vms.running(vm.id).viommu.bindings()).toEqual([]);
  });
});
