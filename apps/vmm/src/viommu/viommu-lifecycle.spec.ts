import type { Errno } from '@app/shared/errno';
import type { FakeHostKernel } from '../vm/fake-host-kernel';
import { VTD_FAULT_REASONS } from '@app/shared/vtd/vtd.constants';
import { VMM_FAULT_REASONS } from './viommu.constants';
import { cacheWait, CLEAR, DIR_A, DIR_B, FL, ram, setup, TABLE_A, TABLE_B, VRID_A, VRID_B, writeEntry } from './viommu.fixture';

/** The next call of `op` fails with `errno`; every later call works. */
function failOnce(hk: FakeHostKernel, op: string, errno: Errno = 'EIO'): void {
  let armed = true;
  hk.failWhen = (o) => {
    if (!armed || o !== op) return null;
    armed = false;
    return errno;
  };
}

const HOST_REFUSED = VMM_FAULT_REASONS['vmm-host-refused'].code;

describe('vIOMMU reset (guest died, the VM stays) and close (VM teardown)', () => {
  it('reset tears every binding down newest first, forgets contexts, faults and page requests, and stays open', async () => {
    const { hk, vm } = await setup();
    const baseline = hk.held();
    writeEntry(hk, vm, DIR_A, TABLE_A, 1, FL());
    writeEntry(hk, vm, DIR_B, TABLE_B, 1, FL());
    writeEntry(hk, vm, DIR_A, TABLE_A, 2, FL(0x20000));
    writeEntry(hk, vm, DIR_A, TABLE_A, 3, { ...FL(), pgtt: 2 }); // a refused entry: one fault in the log
    await vm.viommu.invalidate([...cacheWait(1), ...cacheWait(2), ...cacheWait(3)]);
    const ppasid = vm.viommu.bindings()[0].ioasid;
    vm.viommu.translateHostPageRequest({ bdf: '0000:6a:01.0', pasid: ppasid, address: 0x7f0000000000, access: 'read' });
    expect(vm.viommu.faults()).toHaveLength(1);
    expect(vm.viommu.pageRequests()).toHaveLength(1);
    hk.calls.length = 0;

    expect(await vm.viommu.reset()).toEqual([]);
    expect(hk.mutatingCalls()).toEqual(['unmapPasid', 'disallowIoasid', 'destroy', 'unmapPasid', 'disallowIoasid', 'disallowIoasid', 'destroy']);
    expect(hk.held()).toEqual(baseline);
    expect(vm.viommu.bindings()).toEqual([]);
    expect(vm.viommu.faults()).toEqual([]);
    expect(vm.viommu.pageRequests()).toEqual([]);
    expect([vm.viommu.contextOf(VRID_A), vm.viommu.contextOf(VRID_B)]).toEqual([null, null]);

    // A new guest boots on the same VM: it registers its directory and binds again.
    ram(hk, vm, DIR_A, 4096).fill(0);
    await vm.viommu.setContext(VRID_A, 0x6000);
    writeEntry(hk, vm, 0x6000, 0x7000, 1, FL());
    expect(await vm.viommu.invalidate(cacheWait(1))).toEqual({ completed: 2, faults: [] });
    expect(vm.viommu.bindings()).toEqual([expect.objectContaining({ vpasid: 1, vrids: [VRID_A] })]);
  });

  it('close (= releaseAll) tears everything down and refuses every later call with ENODEV', async () => {
    const { hk, vm } = await setup();
    const baseline = hk.held();
    writeEntry(hk, vm, DIR_A, TABLE_A, 1, FL());
    await vm.viommu.invalidate(cacheWait(1));
    expect(await vm.viommu.releaseAll()).toEqual([]);
    expect(hk.held()).toEqual(baseline);
    await expect(vm.viommu.invalidate([{ type: 'wait' }])).rejects.toMatchObject({ errno: 'ENODEV' });
    await expect(vm.viommu.setContext(VRID_A, DIR_A)).rejects.toMatchObject({ errno: 'ENODEV' });
    await expect(vm.viommu.reset()).rejects.toMatchObject({ errno: 'ENODEV' });
  });
});

describe('vIOMMU setContext is serialized with the invalidation queue', () => {
  it('a directory move issued while a pasid-cache setup is in flight sees the new binding (EBUSY) and changes nothing', async () => {
    const { hk, vm } = await setup();
    writeEntry(hk, vm, DIR_A, TABLE_A, 5, FL());
    const batch = vm.viommu.invalidate(cacheWait(5));
    const move = vm.viommu.setContext(VRID_A, 0x5000);
    expect(await batch).toEqual({ completed: 2, faults: [] });
    await expect(move).rejects.toMatchObject({ errno: 'EBUSY' });
    expect(vm.viommu.contextOf(VRID_A)).toBe(DIR_A);
    expect(vm.viommu.bindings()).toEqual([expect.objectContaining({ vpasid: 5, vrids: [VRID_A] })]);
  });
});

describe('vIOMMU teardown failures keep a stale binding until a retry finishes it', () => {
  it('a failed UNMAP_PASID keeps V stale (host still maps it, quota still counts it); the next pasid-cache unmaps before mapping again', async () => {
    const { hk, vm } = await setup({ quota: 1 });
    const baseline = hk.held();
    writeEntry(hk, vm, DIR_A, TABLE_A, 5, FL());
    await vm.viommu.invalidate(cacheWait(5));
    hk.calls.length = 0;
    writeEntry(hk, vm, DIR_A, TABLE_A, 5, CLEAR);
    failOnce(hk, 'unmapPasid');
    const res = await vm.viommu.invalidate(cacheWait(5));
    expect(res.faults).toEqual([expect.objectContaining({ vrid: null, vpasid: 5, code: HOST_REFUSED, errno: 'EIO' })]);
    expect(JSON.stringify(res)).not.toContain('injected');
    // DISALLOW and DESTROY still ran: the device is cut off; only the KVM entry is left.
    expect(hk.mutatingCalls()).toEqual(['unmapPasid', 'disallowIoasid', 'destroy']);
    expect(hk.held().filter((h) => !baseline.includes(h))).toEqual([`kvm pasid ${vm.handles.vmFd}:5`]);
    expect(vm.viommu.bindings()).toEqual([expect.objectContaining({ vpasid: 5, vrids: [], teardown: { mapped: true, vrids: [], live: false } })]);

    // The stale binding still counts against the quota.
    writeEntry(hk, vm, DIR_A, TABLE_A, 6, FL(0x20000));
    expect((await vm.viommu.invalidate(cacheWait(6))).faults).toEqual([expect.objectContaining({ vpasid: 6, errno: 'ENOSPC' })]);

    // The guest binds V again: UNMAP_PASID(5) is retried first, then the full setup (no EEXIST).
    hk.calls.length = 0;
    writeEntry(hk, vm, DIR_A, TABLE_A, 5, FL());
    expect(await vm.viommu.invalidate(cacheWait(5))).toEqual({ completed: 2, faults: [] });
    expect(hk.mutatingCalls()).toEqual(['unmapPasid', 'alloc', 'bindPgtbl', 'allowIoasid', 'mapPasid']);
    expect(vm.viommu.bindings()).toEqual([expect.objectContaining({ vpasid: 5, vrids: [VRID_A] })]);
    expect(vm.viommu.bindings()[0].teardown).toBeUndefined();
  });

  it('while the retry still fails, nothing new is set up and the guest gets a fault for its device', async () => {
    const { hk, vm } = await setup();
    writeEntry(hk, vm, DIR_A, TABLE_A, 5, FL());
    await vm.viommu.invalidate(cacheWait(5));
    writeEntry(hk, vm, DIR_A, TABLE_A, 5, CLEAR);
    hk.failWhen = (op) => (op === 'destroy' ? 'EBUSY' : null);
    await vm.viommu.invalidate(cacheWait(5));
    hk.calls.length = 0;
    writeEntry(hk, vm, DIR_A, TABLE_A, 5, FL());
    const res = await vm.viommu.invalidate(cacheWait(5));
    expect(hk.mutatingCalls()).toEqual(['destroy']);
    expect(res.faults).toEqual([
      expect.objectContaining({ vrid: null, vpasid: 5, errno: 'EBUSY', code: HOST_REFUSED }),
      expect.objectContaining({ vrid: VRID_A, vpasid: 5, errno: 'EBUSY', code: HOST_REFUSED }),
    ]);
    expect(vm.viommu.bindings()[0].teardown).toEqual({ mapped: false, vrids: [], live: true });
    // Global invalidation retries stale bindings too; once the host lets go, V is set up again.
    hk.failWhen = null;
    expect(await vm.viommu.invalidate([{ type: 'pasid-cache' }])).toEqual({ completed: 1, faults: [] });
    expect(vm.viommu.bindings()).toEqual([expect.objectContaining({ vpasid: 5, vrids: [VRID_A] })]);
    expect(vm.viommu.bindings()[0].teardown).toBeUndefined();
  });

  it('a failed setup whose unwind also fails is kept stale, and retried before the next setup', async () => {
    const { hk, vm } = await setup();
    const baseline = hk.held();
    writeEntry(hk, vm, DIR_A, TABLE_A, 5, FL());
    let destroyFailures = 1;
    hk.failWhen = (op) => (op === 'mapPasid' ? 'ENOSPC' : op === 'destroy' && destroyFailures-- > 0 ? 'EIO' : null);
    const res = await vm.viommu.invalidate(cacheWait(5));
    expect(hk.mutatingCalls()).toEqual(['alloc', 'bindPgtbl', 'allowIoasid', 'mapPasid', 'disallowIoasid', 'destroy']);
    expect(res.faults).toEqual([
      expect.objectContaining({ vrid: VRID_A, vpasid: 5, errno: 'ENOSPC' }),
      expect.objectContaining({ vrid: null, vpasid: 5, errno: 'EIO' }),
    ]);
    const [stale] = vm.viommu.bindings();
    expect(stale.teardown).toEqual({ mapped: false, vrids: [], live: true });
    expect(hk.held()).toContain(`ioasid ${stale.ioasid} bound`);

    hk.failWhen = null;
    hk.calls.length = 0;
    expect(await vm.viommu.invalidate(cacheWait(5))).toEqual({ completed: 2, faults: [] });
    expect(hk.mutatingCalls()).toEqual(['destroy', 'alloc', 'bindPgtbl', 'allowIoasid', 'mapPasid']);
    writeEntry(hk, vm, DIR_A, TABLE_A, 5, CLEAR);
    await vm.viommu.invalidate(cacheWait(5));
    expect(hk.held()).toEqual(baseline);
  });

  it('reset returns the host errors, keeps what failed stale and reports it to the next guest', async () => {
    const { hk, vm } = await setup();
    writeEntry(hk, vm, DIR_A, TABLE_A, 5, FL());
    await vm.viommu.invalidate(cacheWait(5));
    failOnce(hk, 'disallowIoasid', 'EBUSY');
    expect((await vm.viommu.reset()).map((e) => e.errno)).toEqual(['EBUSY']);
    expect(vm.viommu.faults()).toEqual([expect.objectContaining({ vrid: VRID_A, vpasid: 5, errno: 'EBUSY' })]);
    expect(vm.viommu.bindings()[0].teardown).toEqual({ mapped: false, vrids: [VRID_A], live: false });
    // The stale binding pins no directory: the new guest may register another one.
    await vm.viommu.setContext(VRID_A, 0x6000);
    expect(await vm.viommu.close()).toEqual([]);
    expect(vm.viommu.bindings()).toEqual([]);
  });
});

describe('vIOMMU device moves never leave KVM mapping an ioasid allowed on no device', () => {
  it('moving V from vrid A to B when ALLOW on B fails is a full teardown (UNMAP_PASID, DISALLOW, DESTROY)', async () => {
    const { hk, vm } = await setup();
    const baseline = hk.held();
    writeEntry(hk, vm, DIR_A, TABLE_A, 3, FL());
    await vm.viommu.invalidate(cacheWait(3));
    hk.calls.length = 0;
    writeEntry(hk, vm, DIR_A, TABLE_A, 3, CLEAR);
    writeEntry(hk, vm, DIR_B, TABLE_B, 3, FL());
    failOnce(hk, 'allowIoasid', 'ENOSPC');
    const res = await vm.viommu.invalidate(cacheWait(3));
    expect(hk.mutatingCalls()).toEqual(['allowIoasid', 'unmapPasid', 'disallowIoasid', 'destroy']);
    expect(res.faults).toEqual([expect.objectContaining({ vrid: VRID_B, vpasid: 3, errno: 'ENOSPC' })]);
    expect(vm.viommu.bindings()).toEqual([]);
    expect(hk.held()).toEqual(baseline);
  });

  it('a failed DISALLOW of a device leaving V keeps it listed, and the next pasid-cache retries it', async () => {
    const { hk, vm } = await setup();
    writeEntry(hk, vm, DIR_A, TABLE_A, 3, FL());
    writeEntry(hk, vm, DIR_B, TABLE_B, 3, FL());
    await vm.viommu.invalidate(cacheWait(3));
    writeEntry(hk, vm, DIR_A, TABLE_A, 3, CLEAR);
    failOnce(hk, 'disallowIoasid', 'EBUSY');
    expect((await vm.viommu.invalidate(cacheWait(3))).faults).toEqual([expect.objectContaining({ vrid: VRID_A, errno: 'EBUSY' })]);
    expect(vm.viommu.bindings()[0].vrids).toEqual([VRID_A, VRID_B]);
    hk.calls.length = 0;
    await vm.viommu.invalidate(cacheWait(3));
    expect(hk.mutatingCalls()).toEqual(['disallowIoasid']);
    expect(vm.viommu.bindings()[0].vrids).toEqual([VRID_B]);
  });
});

describe('vIOMMU never forwards host error text to the guest', () => {
  it('a failed guest-memory read of a PASID entry is a fault with a fixed text and the errno', async () => {
    const { hk, vm } = await setup();
    writeEntry(hk, vm, DIR_A, TABLE_A, 5, FL());
    hk.failWhen = (op) => (op === 'readGuestMemory' ? 'EFAULT' : null);
    const res = await vm.viommu.invalidate(cacheWait(5));
    expect(res.faults[0]).toMatchObject({ vrid: VRID_A, vpasid: 5, errno: 'EFAULT', code: VTD_FAULT_REASONS['pasid-dir-access-error'].code });
    expect(res.faults[0].detail).toBe('reading the PASID directory entry of vPASID 5 failed (EFAULT)');
    expect(JSON.stringify(res)).not.toContain('injected');
  });

  it('a failed directory scan of a global invalidation is a fault, not a rejection carrying host text', async () => {
    const { hk, vm } = await setup();
    hk.failWhen = (op) => (op === 'readGuestMemory' ? 'EIO' : null);
    const res = await vm.viommu.invalidate([{ type: 'pasid-cache' }]);
    expect(res.completed).toBe(1);
    expect(res.faults.map((f) => [f.vrid, f.errno, f.detail])).toEqual([
      [VRID_A, 'EFAULT', 'reading the PASID directory failed (EIO)'],
      [VRID_B, 'EFAULT', 'reading the PASID directory failed (EIO)'],
    ]);
    expect(JSON.stringify(res)).not.toContain('injected');
  });
});
