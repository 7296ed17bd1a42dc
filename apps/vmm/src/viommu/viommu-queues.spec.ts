// The vIOMMU's invalidation queues (docs/guest-memory.md, "Invalidation queues"): one FIFO per vPASID, so batches of
// different vPASIDs overlap; a vPASID's own batches, a batch of waits only and a global descriptor keep their order.
// The VM's door to the host holds vPASID 5's MAP_PASID until the test lets it go: what completes meanwhile is what
// did not wait for it, and what has made no host call is what did.
import type { HostKernelPort } from '../host-kernel.port';
import { holdWhen, type HoldWhen, settled } from '../../../../stack/fixtures/hold-when';
import { cacheWait, CLEAR, closeHosts, DIR_A, FL, setup, type Setup, TABLE_A, writeEntry } from '../../../../stack/fixtures/vm';
import { VMM_FAULT_REASONS } from './viommu.constants';

afterEach(closeHosts);

/** Lets queued macrotasks run. */
const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('vIOMMU invalidation queues: one per vPASID, waits and global descriptors as barriers', () => {
  /** A VM whose host door holds the first MAP_PASID (vPASID 5's setup) until the test releases it. */
  async function held(): Promise<Setup & { gate: HoldWhen<HostKernelPort> }> {
    let gate: HoldWhen<HostKernelPort> | null = null;
    const s = await setup({ wrapHost: (port) => (gate = holdWhen(port)).port });
    const g = gate as unknown as HoldWhen<HostKernelPort>;
    g.hold = (method, args) => method === 'mapPasid' && (args[1] as { vpasid: number }).vpasid === 5;
    await writeEntry(s.vm, DIR_A, TABLE_A, 5, FL());
    await writeEntry(s.vm, DIR_A, TABLE_A, 6, FL(0x20000));
    return { ...s, gate: g };
  }

  it('batches of different vPASIDs overlap: vPASID 6 is mirrored and completes while 5’s MAP_PASID is held on the host', async () => {
    const { vm, gate } = await held();
    const five = vm.viommu.invalidate(cacheWait(5));
    const fiveDone = settled(five);
    const call = await gate.reached('mapPasid');
    // Submitted after 5's batch, while it waits on the host: without a queue per vPASID this would wait behind it.
    expect(await vm.viommu.invalidate(cacheWait(6))).toEqual({ completed: 2, faults: [] });
    expect(fiveDone.done).toBe(false);
    expect(vm.viommu.bindings().map((b) => b.vpasid)).toEqual([6]);
    call.release();
    expect(await five).toEqual({ completed: 2, faults: [] });
    expect(vm.viommu.bindings().map((b) => b.vpasid).sort()).toEqual([5, 6]);
  });

  it('a vPASID’s own batches stay in order: the teardown of 5 starts only after its setup completed', async () => {
    const { vm, gate } = await held();
    const setupBatch = vm.viommu.invalidate(cacheWait(5));
    const call = await gate.reached('mapPasid');
    await writeEntry(vm, DIR_A, TABLE_A, 5, CLEAR);
    const teardownBatch = vm.viommu.invalidate(cacheWait(5));
    const teardownDone = settled(teardownBatch);
    // Whatever else runs meanwhile (vPASID 6 here), 5's second batch has not started: no UNMAP_PASID yet.
    await vm.viommu.invalidate(cacheWait(6));
    expect(teardownDone.done).toBe(false);
    expect(gate.passed).not.toContain('unmapPasid');
    call.release();
    await Promise.all([setupBatch, teardownBatch]);
    const order = gate.passed.filter((m) => ['mapPasid', 'unmapPasid', 'disallowIoasid', 'destroy'].includes(m));
    // 6's MAP_PASID went first (it was not held); then 5's, then 5's teardown in the design order.
    expect(order).toEqual(['mapPasid', 'mapPasid', 'unmapPasid', 'disallowIoasid', 'destroy']);
    expect(vm.viommu.bindings().map((b) => b.vpasid)).toEqual([6]);
  });

  it('a batch of waits only is a barrier: it completes after every batch before it, and a batch after it waits for it', async () => {
    const { vm, gate } = await held();
    const five = settled(vm.viommu.invalidate(cacheWait(5)));
    const call = await gate.reached('mapPasid');
    const mark = gate.passed.length;
    const wait = vm.viommu.invalidate([{ type: 'wait' }]);
    const waitDone = settled(wait);
    const six = vm.viommu.invalidate(cacheWait(6));
    const sixDone = settled(six);
    await tick();
    expect([five.done, waitDone.done, sixDone.done]).toEqual([false, false, false]);
    // 6 queued behind the barrier: none of its host calls has been made.
    expect(gate.passed.slice(mark)).toEqual([]);
    call.release();
    expect(await wait).toEqual({ completed: 1, faults: [] });
    expect(await six).toEqual({ completed: 2, faults: [] });
    expect(five.done).toBe(true);
  });

  it('a global pasid-cache is a barrier too: it runs after the held batch of vPASID 5, and finds 6 then', async () => {
    const { vm, gate } = await held();
    const five = vm.viommu.invalidate(cacheWait(5));
    const call = await gate.reached('mapPasid');
    const mark = gate.passed.length;
    const global = vm.viommu.invalidate([{ type: 'pasid-cache' }, { type: 'wait' }]);
    const globalDone = settled(global);
    await tick();
    expect(globalDone.done).toBe(false);
    expect(gate.passed.slice(mark)).toEqual([]);
    call.release();
    await five;
    expect(await global).toEqual({ completed: 2, faults: [] });
    expect(vm.viommu.bindings().map((b) => b.vpasid).sort()).toEqual([5, 6]);
  });

  it('setups running side by side share the quota: with room for one, the second concurrent setup is refused ENOSPC', async () => {
    let gate: HoldWhen<HostKernelPort> | null = null;
    const { vm } = await setup({ quota: 1, wrapHost: (port) => (gate = holdWhen(port)).port });
    const g = gate as unknown as HoldWhen<HostKernelPort>;
    g.hold = (method, args) => method === 'mapPasid' && (args[1] as { vpasid: number }).vpasid === 5;
    await writeEntry(vm, DIR_A, TABLE_A, 5, FL());
    await writeEntry(vm, DIR_A, TABLE_A, 6, FL(0x20000));
    const five = vm.viommu.invalidate(cacheWait(5));
    const call = await g.reached('mapPasid');
    const six = await vm.viommu.invalidate(cacheWait(6));
    expect(six.faults.map((f) => [f.vpasid, f.errno, f.code])).toEqual([[6, 'ENOSPC', VMM_FAULT_REASONS['vmm-pasid-quota'].code]]);
    call.release();
    expect((await five).faults).toEqual([]);
    expect(vm.viommu.bindings().map((b) => b.vpasid)).toEqual([5]);
  });
});
