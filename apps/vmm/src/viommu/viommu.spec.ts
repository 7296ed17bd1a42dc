import { encodePasidEntry } from '@app/shared/vtd/pasid-entry';
import { VTD_FAULT_REASONS } from '@app/shared/vtd/vtd.constants';
import { hwOps } from '../../../host-kernel/src/ops';
import { PAGE_SIZE as PAGE_BYTES } from '@app/shared/x86/pte';
import { VMM_FAULT_REASONS } from './viommu.constants';
import {
  ALLOC,
  ALLOW,
  BDF_A,
  BDF_B,
  BIND,
  cacheWait,
  CLEAR,
  closeHosts,
  CR3,
  DESTROY,
  deviceFd,
  DIR_A,
  DIR_B,
  DISALLOW,
  FL,
  MAP_PASID,
  OTHER_BDFS,
  RAM,
  setup,
  SETUP,
  TABLE_A,
  TABLE_B,
  TEARDOWN,
  UNMAP_PASID,
  VRID_A,
  VRID_B,
  writeEntry,
} from '../../../../stack/fixtures/vm';

afterEach(closeHosts);

describe('vIOMMU setContext', () => {
  it('refuses an unknown vrid (ENODEV) and a bad directory (EINVAL), keeping the old context', async () => {
    const { vm } = await setup();
    await expect(vm.viommu.setContext(0x18, DIR_A)).rejects.toMatchObject({ errno: 'ENODEV' });
    await expect(vm.viommu.setContext(VRID_A, 0x1001)).rejects.toMatchObject({ errno: 'EINVAL' });
    await expect(vm.viommu.setContext(VRID_A, RAM)).rejects.toMatchObject({ errno: 'EINVAL' });
    await expect(vm.viommu.setContext(VRID_A, -4096)).rejects.toMatchObject({ errno: 'EINVAL' });
    expect(vm.viommu.contextOf(VRID_A)).toBe(DIR_A);
    expect(vm.viommu.contextOf(0x18)).toBeNull();
  });
});

describe('vIOMMU pasid-cache: mirroring a PASID entry on the host', () => {
  it('a newly present entry is mirrored as exactly ALLOC, BIND_PGTBL(nested), ALLOW(pasid), MAP_PASID', async () => {
    const { host, vm } = await setup();
    await writeEntry(vm, DIR_A, TABLE_A, 5, FL());
    const mark = await host.mark();
    expect(await vm.viommu.invalidate(cacheWait(5))).toEqual({ completed: 2, faults: [] });
    const [b] = vm.viommu.bindings();
    const { ioasidFd, gpaIoasid, vmFd } = vm.handles;
    const rows = await host.calledRows(mark);
    expect(rows.map((r) => [r.operation, r.args, r.errno])).toEqual([
      [ALLOC, { fd: ioasidFd }, null],
      [BIND, { fd: ioasidFd, ioasid: b.ioasid, kind: 'nested', parent: gpaIoasid, root: CR3, faultQueue: vm.handles.faultQueue }, null],
      [ALLOW, { deviceFd: deviceFd(vm, VRID_A), ioasidFd, ioasid: b.ioasid, mode: 'pasid' }, null],
      [MAP_PASID, { vmFd, vpasid: 5, ioasidFd, ioasid: b.ioasid }, null],
    ]);
    expect(rows[0].result).toEqual({ ioasid: b.ioasid });
    // The host now has a nested ioasid under the GPA one, routed for A's PASID, and KVM translating 5 to it.
    const s = host.state();
    expect(s.ioasids.find((i) => i.id === b.ioasid)).toMatchObject({
      state: 'bound',
      pgtbl: { kind: 'nested', destroyed: false },
      holders: { devices: [`${BDF_A}/pasid`], kvm: [{ vmFd, vpasid: 5 }], children: [] },
    });
    expect(s.ioasids.find((i) => i.id === gpaIoasid)?.holders.children).toEqual([b.ioasid]);
    expect(s.routes.filter((r) => r.ioasid === b.ioasid).map((r) => [r.bdf, r.ppasid, r.blocked])).toEqual([[BDF_A, b.ioasid, false]]);
    expect(s.vms[0].pasids).toEqual([{ vpasid: 5, ppasid: b.ioasid, translates: true }]);
    expect(b).toMatchObject({ vpasid: 5, vrids: [VRID_A], entry: { pgtt: 1, flptr: CR3 } });
    expect(b.snapshots[VRID_A]).toBe(encodePasidEntry(FL()).toString('hex'));
  });

  it('a cleared entry is torn down as exactly UNMAP_PASID, DISALLOW, DESTROY, and the host is back where it was', async () => {
    const { host, vm, baseline } = await setup();
    await writeEntry(vm, DIR_A, TABLE_A, 5, FL());
    await vm.viommu.invalidate(cacheWait(5));
    await writeEntry(vm, DIR_A, TABLE_A, 5, CLEAR);
    const mark = await host.mark();
    expect(await vm.viommu.invalidate(cacheWait(5))).toEqual({ completed: 2, faults: [] });
    expect(await host.ops(mark)).toEqual(TEARDOWN);
    expect(vm.viommu.bindings()).toEqual([]);
    expect(host.state()).toEqual(baseline);
  });

  it('a changed pointer tears down then sets up again; an unchanged entry does nothing', async () => {
    const { host, vm } = await setup();
    await writeEntry(vm, DIR_A, TABLE_A, 5, FL());
    await vm.viommu.invalidate(cacheWait(5));
    let mark = await host.mark();
    await vm.viommu.invalidate(cacheWait(5));
    expect(await host.rows(mark)).toEqual([]);
    await writeEntry(vm, DIR_A, TABLE_A, 5, FL(0x20000));
    mark = await host.mark();
    await vm.viommu.invalidate(cacheWait(5));
    expect(await host.ops(mark)).toEqual([...TEARDOWN, ...SETUP]);
    expect((await host.calledRows(mark)).find((r) => r.operation === BIND)?.args).toMatchObject({ root: 0x20000 });
    expect(vm.viommu.bindings()[0].entry).toEqual({ pgtt: 1, flptr: 0x20000 });
  });

  it('pass-through (PGTT 4) becomes a nested ioasid with no root', async () => {
    const { host, vm } = await setup();
    await writeEntry(vm, DIR_A, TABLE_A, 7, { present: true, pgtt: 4, flpm: 0, flptr: 0 });
    const mark = await host.mark();
    await vm.viommu.invalidate(cacheWait(7));
    const [b] = vm.viommu.bindings();
    expect((await host.calledRows(mark)).find((r) => r.operation === BIND)?.args).toEqual({ fd: vm.handles.ioasidFd, ioasid: b.ioasid, kind: 'nested', parent: vm.handles.gpaIoasid, faultQueue: vm.handles.faultQueue });
  });

  it('the same vPASID on two vrids shares one host ioasid: the second only ALLOWs, removing one only DISALLOWs', async () => {
    const { host, vm } = await setup();
    await writeEntry(vm, DIR_A, TABLE_A, 3, FL());
    await vm.viommu.invalidate(cacheWait(3));
    const [b] = vm.viommu.bindings();
    await writeEntry(vm, DIR_B, TABLE_B, 3, FL());
    let mark = await host.mark();
    await vm.viommu.invalidate(cacheWait(3));
    expect((await host.calledRows(mark)).map((r) => [r.operation, r.args, r.errno])).toEqual([
      [ALLOW, { deviceFd: deviceFd(vm, VRID_B), ioasidFd: vm.handles.ioasidFd, ioasid: b.ioasid, mode: 'pasid' }, null],
    ]);
    expect(vm.viommu.bindings()[0].vrids).toEqual([VRID_A, VRID_B]);
    expect(host.state().ioasids.find((i) => i.id === b.ioasid)?.holders.devices).toEqual([`${BDF_A}/pasid`, `${BDF_B}/pasid`]);
    await writeEntry(vm, DIR_A, TABLE_A, 3, CLEAR);
    mark = await host.mark();
    await vm.viommu.invalidate(cacheWait(3));
    expect((await host.calledRows(mark)).map((r) => [r.operation, r.args, r.errno])).toEqual([
      [DISALLOW, { deviceFd: deviceFd(vm, VRID_A), ioasidFd: vm.handles.ioasidFd, ioasid: b.ioasid }, null],
    ]);
    expect(vm.viommu.bindings()[0].vrids).toEqual([VRID_B]);
    const s = host.state();
    expect(s.ioasids.find((i) => i.id === b.ioasid)?.holders).toEqual({ devices: [`${BDF_B}/pasid`], kvm: [{ vmFd: vm.handles.vmFd, vpasid: 3 }], children: [] });
  });

  it('a different entry for the same vPASID on another vrid is refused (EBUSY fault), the first stays', async () => {
    const { host, vm } = await setup();
    await writeEntry(vm, DIR_A, TABLE_A, 3, FL());
    await vm.viommu.invalidate(cacheWait(3));
    await writeEntry(vm, DIR_B, TABLE_B, 3, FL(0x20000));
    const before = host.state();
    const mark = await host.mark();
    const res = await vm.viommu.invalidate(cacheWait(3));
    expect(res.faults).toEqual([expect.objectContaining({ vrid: VRID_B, vpasid: 3, code: VMM_FAULT_REASONS['vmm-entry-conflict'].code, errno: 'EBUSY' })]);
    expect(await host.rows(mark)).toEqual([]);
    expect(host.state()).toEqual(before);
    expect(vm.viommu.bindings()[0].vrids).toEqual([VRID_A]);
  });

  it('global pasid-cache (no vpasid) finds every present entry and every stale binding', async () => {
    const { host, vm } = await setup();
    await writeEntry(vm, DIR_A, TABLE_A, 1, FL());
    await writeEntry(vm, DIR_A, 0x5000, 70, FL(0x20000));
    expect(await vm.viommu.invalidate([{ type: 'pasid-cache' }])).toEqual({ completed: 1, faults: [] });
    expect(vm.viommu.bindings().map((b) => b.vpasid)).toEqual([1, 70]);
    expect(host.state().vms[0].pasids.map((p) => p.vpasid)).toEqual([1, 70]);
    await writeEntry(vm, DIR_A, 0x5000, 70, CLEAR);
    const mark = await host.mark();
    await vm.viommu.invalidate([{ type: 'pasid-cache' }]);
    expect(vm.viommu.bindings().map((b) => b.vpasid)).toEqual([1]);
    expect(await host.ops(mark)).toEqual(TEARDOWN);
    expect((await host.calledRows(mark))[0].args).toEqual({ vmFd: vm.handles.vmFd, vpasid: 70 });
  });
});

describe('vIOMMU invalidation queue', () => {
  it('refuses a batch with an unknown type or bad field with EINVAL before running anything', async () => {
    const { host, vm } = await setup();
    await writeEntry(vm, DIR_A, TABLE_A, 5, FL());
    host.resetCalls();
    for (const bad of [
      [{ type: 'pasid-cache', vpasid: 5 }, { type: 'context-cache' }],
      [{ type: 'pasid-cache', vpasid: 5 }, { type: 'piotlb' }],
      [{ type: 'pasid-cache', vpasid: -1 }],
      [{ type: 'pasid-cache', vpasid: 1.5 }],
      [{ type: 'piotlb', vpasid: 5, addr: 0x1001, npages: 1 }],
      [{ type: 'piotlb', vpasid: 5, addr: 0x1000 }],
      [{ type: 'wait', extra: 1 }],
      'not an array',
    ]) {
      await expect(vm.viommu.invalidate(bad)).rejects.toMatchObject({ errno: 'EINVAL' });
    }
    expect(host.door.calls).toEqual([]);
    expect(vm.viommu.bindings()).toEqual([]);
  });

  it('a lone wait completes at once', async () => {
    const { host, vm } = await setup();
    expect(await vm.viommu.invalidate([{ type: 'wait' }])).toEqual({ completed: 1, faults: [] });
    expect(await vm.viommu.invalidate([])).toEqual({ completed: 0, faults: [] });
    expect(host.door.calls).toEqual([]);
  });

  it("piotlb invalidates the vPASID's ioasid on the host (range or all); an unbound vPASID is a no-op", async () => {
    const { host, vm } = await setup();
    await writeEntry(vm, DIR_A, TABLE_A, 5, FL());
    await vm.viommu.invalidate(cacheWait(5));
    const ioasid = vm.viommu.bindings()[0].ioasid;
    const fd = vm.handles.ioasidFd;
    const mark = await host.mark();
    const res = await vm.viommu.invalidate([
      { type: 'piotlb', vpasid: 5, addr: 0x7f0000000000, npages: 2 },
      { type: 'piotlb', vpasid: 5, addr: 0x1000, length: 100 },
      { type: 'piotlb', vpasid: 5 },
      { type: 'piotlb', vpasid: 9 },
      { type: 'wait' },
    ]);
    expect(res).toEqual({ completed: 5, faults: [] });
    expect((await host.calledRows(mark)).map((r) => [r.operation, r.args, r.errno])).toEqual([
      ['ioasid.invalidate', { fd, ioasid, iova: 0x7f0000000000, length: 2 * PAGE_BYTES }, null],
      ['ioasid.invalidate', { fd, ioasid, iova: 0x1000, length: PAGE_BYTES }, null],
      ['ioasid.invalidate', { fd, ioasid }, null],
    ]);
  });
});

describe('vIOMMU and VM teardown, host faults', () => {
  it('teardown first unbinds every vPASID (UNMAP_PASID, DISALLOW, DESTROY), then the VM; nothing left', async () => {
    const { host, vm, builder } = await setup();
    await writeEntry(vm, DIR_A, TABLE_A, 1, FL());
    await writeEntry(vm, DIR_B, TABLE_B, 1, FL());
    await writeEntry(vm, DIR_A, TABLE_A, 2, FL(0x20000));
    await vm.viommu.invalidate([...cacheWait(1), ...cacheWait(2)]);
    const [b1, b2] = vm.viommu.bindings();
    const { vmFd, ioasidFd } = vm.handles;
    const mark = await host.mark();
    expect(await builder.teardown(vm)).toEqual([]);
    const rows = await host.calledRows(mark);
    // Newest vPASID first; within one, the devices newest first.
    expect(rows.slice(0, 7).map((r) => [r.operation, r.args, r.errno])).toEqual([
      [UNMAP_PASID, { vmFd, vpasid: 2 }, null],
      [DISALLOW, { deviceFd: deviceFd(vm, VRID_A), ioasidFd, ioasid: b2.ioasid }, null],
      [DESTROY, { fd: ioasidFd, ioasid: b2.ioasid }, null],
      [UNMAP_PASID, { vmFd, vpasid: 1 }, null],
      [DISALLOW, { deviceFd: deviceFd(vm, VRID_B), ioasidFd, ioasid: b1.ioasid }, null],
      [DISALLOW, { deviceFd: deviceFd(vm, VRID_A), ioasidFd, ioasid: b1.ioasid }, null],
      [DESTROY, { fd: ioasidFd, ioasid: b1.ioasid }, null],
    ]);
    expect(rows.at(-1)?.operation).toBe('process.exit');
    expect(rows.every((r) => r.errno === null)).toBe(true);
    // Everything released by explicit calls before the process died; nothing of the VM left on the host.
    expect(host.heldAtExit(vm.handles.pid)).toEqual([]);
    expect(host.leftovers(vm.handles.pid)).toEqual([]);
    await expect(vm.viommu.invalidate([{ type: 'wait' }])).rejects.toMatchObject({ errno: 'ENODEV' });
  });

  it('translates host fault records to virtual ids only', async () => {
    const { host, vm } = await setup();
    await writeEntry(vm, DIR_A, TABLE_A, 5, FL());
    await vm.viommu.invalidate(cacheWait(5));
    const ppasid = vm.viommu.bindings()[0].ioasid;
    // Real faults of the host IOMMU: device A tagged with the pPASID at a GVA the guest's (empty) table does
    // not map, and device B without PASID (its RID: the GPA space) beyond guest RAM.
    const gva = 0x7f0000001000;
    expect(await host.admin(hwOps.dma, { bdf: BDF_A, pasid: ppasid, address: gva, length: 8, write: true, data: Buffer.alloc(8) })).toMatchObject({ ok: false });
    expect(await host.admin(hwOps.dma, { bdf: BDF_B, address: RAM, length: 8, write: false })).toMatchObject({ ok: false });
    const [onA, onB] = await host.admin(hwOps.faults, {});
    expect(onA).toMatchObject({ bdf: BDF_A, pasid: ppasid, address: gva, access: 'write', reason: 'fl-not-present' });
    expect(onB).toMatchObject({ bdf: BDF_B, pasid: null, address: RAM, access: 'read', reason: 'sl-not-present' });
    const { 'fl-not-present': flNotPresent, 'sl-not-present': slNotPresent } = VTD_FAULT_REASONS;
    expect(vm.viommu.translateHostFault(onA)).toMatchObject({ vrid: VRID_A, vpasid: 5, address: gva, access: 'write', errno: 'EFAULT', code: flNotPresent.code, reason: flNotPresent.text });
    expect(vm.viommu.translateHostFault(onB)).toMatchObject({ vrid: VRID_B, vpasid: 0, address: RAM, access: 'read', code: slNotPresent.code, reason: slNotPresent.text });

    // Unknown host prose never reaches the guest (it could name host fds, pids, the pPASID): a fixed text does.
    const prose = `pasid ${ppasid} of host pid ${vm.handles.pid} not present`;
    const f = vm.viommu.translateHostFault({ bdf: BDF_A, pasid: ppasid, address: gva, access: 'write', reason: prose });
    expect(f).toMatchObject({ vrid: VRID_A, vpasid: 5, address: gva, access: 'write', errno: 'EFAULT', code: VMM_FAULT_REASONS['vmm-host-fault'].code });
    expect(f?.detail).toBe('DMA fault with a reason the vIOMMU does not model');
    expect(JSON.stringify(f)).not.toContain(prose);
    expect(JSON.stringify(f)).not.toContain(`pid ${vm.handles.pid}`);
    // Not this VM's: another BDF, or a pPASID it does not hold.
    expect(vm.viommu.translateHostFault({ bdf: OTHER_BDFS[0], pasid: ppasid, address: 0, access: 'read', reason: 'x' })).toBeNull();
    expect(vm.viommu.translateHostFault({ bdf: BDF_A, pasid: ppasid + 100, address: 0, access: 'read', reason: 'x' })).toBeNull();
    expect(vm.viommu.faults()).toHaveLength(3);
  });
});
