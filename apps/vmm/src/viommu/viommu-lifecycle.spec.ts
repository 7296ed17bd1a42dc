import { VTD_FAULT_REASONS } from '@app/shared/vtd/vtd.constants';
import { PASID_DIR_BYTES, VMM_FAULT_REASONS } from './viommu.constants';
import {
  BDF_A,
  BDF_B,
  cacheWait,
  CLEAR,
  closeHosts,
  deviceFd,
  DESTROY,
  DIR_A,
  DIR_B,
  DISALLOW,
  FL,
  setup,
  SETUP,
  TABLE_A,
  TABLE_B,
  TEARDOWN,
  UNMAP_PASID,
  VRID_A,
  VRID_B,
  writeEntry,
  writeRam,
  faultingCopy,
} from '../../../../stack/fixtures/vm';

const HOST_REFUSED = VMM_FAULT_REASONS['vmm-host-refused'].code;

afterEach(closeHosts);

describe('vIOMMU reset (guest died, the VM stays) and close (VM teardown)', () => {
  it('reset tears every binding down newest first, forgets contexts, faults and page requests, and stays open', async () => {
    const { host, vm, baseline } = await setup();
    await writeEntry(vm, DIR_A, TABLE_A, 1, FL());
    await writeEntry(vm, DIR_B, TABLE_B, 1, FL());
    await writeEntry(vm, DIR_A, TABLE_A, 2, FL(0x20000));
    await writeEntry(vm, DIR_A, TABLE_A, 3, { ...FL(), pgtt: 2 }); // a refused entry: one fault in the log
    await vm.viommu.invalidate([...cacheWait(1), ...cacheWait(2), ...cacheWait(3)]);
    await faultingCopy(host, vm, VRID_A, 1);
    await vm.viommu.pullPageRequests();
    expect(vm.viommu.faults()).toHaveLength(1);
    expect(vm.viommu.pageRequests()).toHaveLength(1);
    const mark = await host.mark();

    expect(await vm.viommu.reset()).toEqual([]);
    const rows = await host.calledRows(mark);
    // The waiting page request is answered invalid first; then the bindings go, newest first.
    expect(rows.map((r) => r.operation)).toEqual(['fault.respond', UNMAP_PASID, DISALLOW, DESTROY, UNMAP_PASID, DISALLOW, DISALLOW, DESTROY]);
    expect(rows[0].args).toMatchObject({ code: 'invalid' });
    expect([rows[1].args, rows[4].args]).toEqual([expect.objectContaining({ vpasid: 2 }), expect.objectContaining({ vpasid: 1 })]);
    expect(rows.every((r) => r.errno === null)).toBe(true);
    // Everything the host held for the bindings is gone. The vCPU's IA32_PASID (the faulting copy loaded it) is the
    // guest's own state, not the vIOMMU's: the next guest's boot resets it.
    const vcpusAside = (st: typeof baseline): typeof baseline => ({ ...st, vms: st.vms.map((v) => ({ ...v, ia32Pasids: [] })) });
    expect(vcpusAside(host.state())).toEqual(vcpusAside(baseline));
    expect(vm.viommu.bindings()).toEqual([]);
    expect(vm.viommu.faults()).toEqual([]);
    expect(vm.viommu.pageRequests()).toEqual([]);
    expect([vm.viommu.contextOf(VRID_A), vm.viommu.contextOf(VRID_B)]).toEqual([null, null]);

    // A new guest boots on the same VM: it registers its directory and binds again.
    await writeRam(vm, DIR_A, Buffer.alloc(PASID_DIR_BYTES));
    await vm.viommu.setContext(VRID_A, 0x6000);
    await writeEntry(vm, 0x6000, 0x7000, 1, FL());
    expect(await vm.viommu.invalidate(cacheWait(1))).toEqual({ completed: 2, faults: [] });
    expect(vm.viommu.bindings()).toEqual([expect.objectContaining({ vpasid: 1, vrids: [VRID_A] })]);
    expect(host.state().vms[0].pasids).toEqual([{ vpasid: 1, ppasid: vm.viommu.bindings()[0].ioasid, translates: true }]);
  });

  it('close (= releaseAll) tears everything down and refuses every later call with ENODEV', async () => {
    const { host, vm, baseline } = await setup();
    await writeEntry(vm, DIR_A, TABLE_A, 1, FL());
    await vm.viommu.invalidate(cacheWait(1));
    const mark = await host.mark();
    expect(await vm.viommu.releaseAll()).toEqual([]);
    expect(await host.ops(mark)).toEqual(TEARDOWN);
    expect(host.state()).toEqual(baseline);
    await expect(vm.viommu.invalidate([{ type: 'wait' }])).rejects.toMatchObject({ errno: 'ENODEV' });
    await expect(vm.viommu.setContext(VRID_A, DIR_A)).rejects.toMatchObject({ errno: 'ENODEV' });
    await expect(vm.viommu.reset()).rejects.toMatchObject({ errno: 'ENODEV' });
  });
});

describe('vIOMMU setContext is serialized with the invalidation queue', () => {
  it('a directory move issued while a pasid-cache setup is in flight sees the new binding (EBUSY) and changes nothing', async () => {
    const { vm } = await setup();
    await writeEntry(vm, DIR_A, TABLE_A, 5, FL());
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
    const { host, vm, baseline } = await setup({ quota: 1 });
    const { vmFd } = vm.handles;
    await writeEntry(vm, DIR_A, TABLE_A, 5, FL());
    await vm.viommu.invalidate(cacheWait(5));
    const [bound] = vm.viommu.bindings();
    await writeEntry(vm, DIR_A, TABLE_A, 5, CLEAR);
    host.resetCalls();
    let mark = await host.mark();
    host.failOnce('unmapPasid', 'EIO');
    const res = await vm.viommu.invalidate(cacheWait(5));
    expect(res.faults).toEqual([expect.objectContaining({ vrid: null, vpasid: 5, code: HOST_REFUSED, errno: 'EIO' })]);
    expect(JSON.stringify(res)).not.toContain('injected');
    // DISALLOW and DESTROY still ran on the host: the device is cut off, the ioasid parked; only KVM's entry holds it.
    expect(host.calls()).toEqual(['unmapPasid', 'disallowIoasid', 'destroy']);
    expect(await host.ops(mark)).toEqual([DISALLOW, DESTROY]);
    const s = host.state();
    expect(s.vms[0].pasids).toEqual([{ vpasid: 5, ppasid: bound.ioasid, translates: false }]);
    expect(s.routes.filter((r) => r.ioasid === bound.ioasid)).toEqual([]);
    expect(s.ioasids.find((i) => i.id === bound.ioasid)).toMatchObject({ state: 'destroyed', holders: { devices: [], kvm: [{ vmFd, vpasid: 5 }], children: [] } });
    expect(s.pool.parked).toBe(baseline.pool.parked + 1);
    expect(vm.viommu.bindings()).toEqual([expect.objectContaining({ vpasid: 5, vrids: [], teardown: { mapped: true, vrids: [], live: false } })]);

    // The stale binding still counts against the quota.
    await writeEntry(vm, DIR_A, TABLE_A, 6, FL(0x20000));
    expect((await vm.viommu.invalidate(cacheWait(6))).faults).toEqual([expect.objectContaining({ vpasid: 6, errno: 'ENOSPC' })]);

    // The guest binds V again: UNMAP_PASID(5) is retried first, then the full setup, all accepted (no EEXIST).
    await writeEntry(vm, DIR_A, TABLE_A, 5, FL());
    mark = await host.mark();
    expect(await vm.viommu.invalidate(cacheWait(5))).toEqual({ completed: 2, faults: [] });
    expect(await host.ops(mark)).toEqual([UNMAP_PASID, ...SETUP]);
    expect(vm.viommu.bindings()).toEqual([expect.objectContaining({ vpasid: 5, vrids: [VRID_A] })]);
    expect(vm.viommu.bindings()[0].teardown).toBeUndefined();
    expect(host.state().vms[0].pasids).toEqual([{ vpasid: 5, ppasid: vm.viommu.bindings()[0].ioasid, translates: true }]);
  });

  it('while the retry still fails, nothing new is set up and the guest gets a fault for its device', async () => {
    const { host, vm } = await setup();
    await writeEntry(vm, DIR_A, TABLE_A, 5, FL());
    await vm.viommu.invalidate(cacheWait(5));
    const [bound] = vm.viommu.bindings();
    await writeEntry(vm, DIR_A, TABLE_A, 5, CLEAR);
    host.failWhen((method) => (method === 'destroy' ? 'EBUSY' : null));
    await vm.viommu.invalidate(cacheWait(5));
    host.resetCalls();
    await writeEntry(vm, DIR_A, TABLE_A, 5, FL());
    const mark = await host.mark();
    const res = await vm.viommu.invalidate(cacheWait(5));
    expect(host.calls()).toEqual(['destroy']);
    expect(await host.rows(mark)).toEqual([]);
    expect(res.faults).toEqual([
      expect.objectContaining({ vrid: null, vpasid: 5, errno: 'EBUSY', code: HOST_REFUSED }),
      expect.objectContaining({ vrid: VRID_A, vpasid: 5, errno: 'EBUSY', code: HOST_REFUSED }),
    ]);
    expect(vm.viommu.bindings()[0].teardown).toEqual({ mapped: false, vrids: [], live: true });
    // On the host the old ioasid is still live, held by its fd alone: no route, no KVM entry.
    const s = host.state();
    expect(s.ioasids.find((i) => i.id === bound.ioasid)).toMatchObject({ state: 'bound', holders: { devices: [], kvm: [], children: [] } });
    expect(s.vms[0].pasids).toEqual([]);
    // Global invalidation retries stale bindings too; once the host lets go, V is set up again.
    host.failWhen(null);
    const retry = await host.mark();
    expect(await vm.viommu.invalidate([{ type: 'pasid-cache' }])).toEqual({ completed: 1, faults: [] });
    expect(await host.ops(retry)).toEqual([DESTROY, ...SETUP]);
    expect(vm.viommu.bindings()).toEqual([expect.objectContaining({ vpasid: 5, vrids: [VRID_A] })]);
    expect(vm.viommu.bindings()[0].teardown).toBeUndefined();
  });

  it('a failed setup whose unwind also fails is kept stale, and retried before the next setup', async () => {
    const { host, vm, baseline } = await setup();
    await writeEntry(vm, DIR_A, TABLE_A, 5, FL());
    let destroyFailures = 1;
    host.failWhen((method) => (method === 'mapPasid' ? 'ENOSPC' : method === 'destroy' && destroyFailures-- > 0 ? 'EIO' : null));
    const res = await vm.viommu.invalidate(cacheWait(5));
    expect(host.calls()).toEqual(['alloc', 'bindPgtbl', 'allowIoasid', 'mapPasid', 'disallowIoasid', 'destroy']);
    expect(res.faults).toEqual([
      expect.objectContaining({ vrid: VRID_A, vpasid: 5, errno: 'ENOSPC' }),
      expect.objectContaining({ vrid: null, vpasid: 5, errno: 'EIO' }),
    ]);
    const [stale] = vm.viommu.bindings();
    expect(stale.teardown).toEqual({ mapped: false, vrids: [], live: true });
    expect(host.state().ioasids.find((i) => i.id === stale.ioasid)).toMatchObject({ state: 'bound', holders: { devices: [], kvm: [], children: [] } });

    host.failWhen(null);
    host.resetCalls();
    const mark = await host.mark();
    expect(await vm.viommu.invalidate(cacheWait(5))).toEqual({ completed: 2, faults: [] });
    expect(host.calls()).toEqual(['destroy', 'alloc', 'bindPgtbl', 'allowIoasid', 'mapPasid']);
    expect(await host.ops(mark)).toEqual([DESTROY, ...SETUP]);
    await writeEntry(vm, DIR_A, TABLE_A, 5, CLEAR);
    await vm.viommu.invalidate(cacheWait(5));
    expect(host.state()).toEqual(baseline);
  });

  it('reset returns the host errors, keeps what failed stale and reports it to the next guest', async () => {
    const { host, vm, baseline } = await setup();
    await writeEntry(vm, DIR_A, TABLE_A, 5, FL());
    await vm.viommu.invalidate(cacheWait(5));
    const [bound] = vm.viommu.bindings();
    host.failOnce('disallowIoasid', 'EBUSY');
    expect((await vm.viommu.reset()).map((e) => e.errno)).toEqual(['EBUSY']);
    expect(vm.viommu.faults()).toEqual([expect.objectContaining({ vrid: VRID_A, vpasid: 5, errno: 'EBUSY' })]);
    expect(vm.viommu.bindings()[0].teardown).toEqual({ mapped: false, vrids: [VRID_A], live: false });
    // On the host the ioasid is destroyed (parked) but device A's attachment still holds it, its route blocked.
    const s = host.state();
    expect(s.ioasids.find((i) => i.id === bound.ioasid)).toMatchObject({ state: 'destroyed', holders: { devices: [`${BDF_A}/pasid`], kvm: [], children: [] } });
    expect(s.routes.filter((r) => r.ioasid === bound.ioasid).map((r) => [r.bdf, r.blocked])).toEqual([[BDF_A, true]]);
    // The stale binding pins no directory: the new guest may register another one.
    await vm.viommu.setContext(VRID_A, 0x6000);
    const mark = await host.mark();
    expect(await vm.viommu.close()).toEqual([]);
    expect(vm.viommu.bindings()).toEqual([]);
    expect((await host.calledRows(mark)).map((r) => [r.operation, r.args, r.errno])).toEqual([
      [DISALLOW, { deviceFd: deviceFd(vm, VRID_A), ioasidFd: vm.handles.ioasidFd, ioasid: bound.ioasid }, null],
    ]);
    expect(host.state()).toEqual(baseline);
  });
});

describe('vIOMMU device moves never leave KVM mapping an ioasid allowed on no device', () => {
  it('moving V from vrid A to B when ALLOW on B fails is a full teardown (UNMAP_PASID, DISALLOW, DESTROY)', async () => {
    const { host, vm, baseline } = await setup();
    await writeEntry(vm, DIR_A, TABLE_A, 3, FL());
    await vm.viommu.invalidate(cacheWait(3));
    host.resetCalls();
    await writeEntry(vm, DIR_A, TABLE_A, 3, CLEAR);
    await writeEntry(vm, DIR_B, TABLE_B, 3, FL());
    const mark = await host.mark();
    host.failOnce('allowIoasid', 'ENOSPC', (args) => args[0] === deviceFd(vm, VRID_B));
    const res = await vm.viommu.invalidate(cacheWait(3));
    expect(host.calls()).toEqual(['allowIoasid', 'unmapPasid', 'disallowIoasid', 'destroy']);
    expect(await host.ops(mark)).toEqual(TEARDOWN);
    expect(res.faults).toEqual([expect.objectContaining({ vrid: VRID_B, vpasid: 3, errno: 'ENOSPC' })]);
    expect(vm.viommu.bindings()).toEqual([]);
    expect(host.state()).toEqual(baseline);
  });

  it('a failed DISALLOW of a device leaving V keeps it listed, and the next pasid-cache retries it', async () => {
    const { host, vm } = await setup();
    await writeEntry(vm, DIR_A, TABLE_A, 3, FL());
    await writeEntry(vm, DIR_B, TABLE_B, 3, FL());
    await vm.viommu.invalidate(cacheWait(3));
    const [bound] = vm.viommu.bindings();
    await writeEntry(vm, DIR_A, TABLE_A, 3, CLEAR);
    host.failOnce('disallowIoasid', 'EBUSY', (args) => args[0] === deviceFd(vm, VRID_A));
    expect((await vm.viommu.invalidate(cacheWait(3))).faults).toEqual([expect.objectContaining({ vrid: VRID_A, errno: 'EBUSY' })]);
    expect(vm.viommu.bindings()[0].vrids).toEqual([VRID_A, VRID_B]);
    // The host still routes A (the DISALLOW never reached it).
    expect(host.state().ioasids.find((i) => i.id === bound.ioasid)?.holders.devices).toEqual([`${BDF_A}/pasid`, `${BDF_B}/pasid`]);
    const mark = await host.mark();
    await vm.viommu.invalidate(cacheWait(3));
    expect((await host.calledRows(mark)).map((r) => [r.operation, r.args, r.errno])).toEqual([
      [DISALLOW, { deviceFd: deviceFd(vm, VRID_A), ioasidFd: vm.handles.ioasidFd, ioasid: bound.ioasid }, null],
    ]);
    expect(vm.viommu.bindings()[0].vrids).toEqual([VRID_B]);
    expect(host.state().ioasids.find((i) => i.id === bound.ioasid)?.holders.devices).toEqual([`${BDF_B}/pasid`]);
  });
});

describe('vIOMMU never forwards host error text to the guest', () => {
  it('a failed guest-memory read of a PASID entry is a fault with a fixed text and the errno', async () => {
    const { host, vm } = await setup();
    await writeEntry(vm, DIR_A, TABLE_A, 5, FL());
    host.failWhen((method) => (method === 'readGuestMemory' ? 'EFAULT' : null));
    const res = await vm.viommu.invalidate(cacheWait(5));
    expect(res.faults[0]).toMatchObject({ vrid: VRID_A, vpasid: 5, errno: 'EFAULT', code: VTD_FAULT_REASONS['pasid-dir-access-error'].code });
    expect(res.faults[0].detail).toBe('reading the PASID directory entry of vPASID 5 failed (EFAULT)');
    expect(JSON.stringify(res)).not.toContain('injected');
  });

  it('a failed directory scan of a global invalidation is a fault, not a rejection carrying host text', async () => {
    const { host, vm } = await setup();
    host.failWhen((method) => (method === 'readGuestMemory' ? 'EIO' : null));
    const res = await vm.viommu.invalidate([{ type: 'pasid-cache' }]);
    expect(res.completed).toBe(1);
    expect(res.faults.map((f) => [f.vrid, f.errno, f.detail])).toEqual([
      [VRID_A, 'EFAULT', 'reading the PASID directory failed (EIO)'],
      [VRID_B, 'EFAULT', 'reading the PASID directory failed (EIO)'],
    ]);
    expect(JSON.stringify(res)).not.toContain('injected');
  });
});
