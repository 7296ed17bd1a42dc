import { encodePasidDirEntry, encodePasidEntry } from '@app/shared/vtd/pasid-entry';
import type { FakeHostKernel } from '../vm/fake-host-kernel';
import type { Vm } from '../vm/vm-builder';
import { VTD_FAULT_REASONS } from '@app/shared/vtd/vtd.constants';
import { VMM_FAULT_REASONS, viommuFaultReason, type ViommuFaultReason } from './viommu.constants';
import { cacheWait, CLEAR, CR3, DIR_A, DIR_B, FL, RAM, ram, setup, TABLE_A, TABLE_B, VRID_A, VRID_B, writeEntry } from './viommu.fixture';


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

describe('vIOMMU pasid-cache: mirroring a PASID entry', () => {
  it('a newly present entry is mirrored as exactly ALLOC, BIND_PGTBL(nested), ALLOW(pasid), MAP_PASID', async () => {
    const { hk, vm } = await setup();
    writeEntry(hk, vm, DIR_A, TABLE_A, 5, FL());
    const res = await vm.viommu.invalidate(cacheWait(5));
    expect(res).toEqual({ completed: 2, faults: [] });
    expect(hk.mutatingCalls()).toEqual(['alloc', 'bindPgtbl', 'allowIoasid', 'mapPasid']);
    const [b] = vm.viommu.bindings();
    const { ioasidFd, gpaIoasid, vmFd } = vm.handles;
    expect(hk.log.find((c) => c.op === 'bindPgtbl')?.args).toEqual([ioasidFd, b.ioasid, { kind: 'nested', parent: gpaIoasid, root: CR3 }]);
    expect(hk.log.find((c) => c.op === 'allowIoasid')?.args[1]).toEqual({ ioasidFd, ioasid: b.ioasid, mode: 'pasid' });
    expect(hk.log.find((c) => c.op === 'mapPasid')?.args).toEqual([vmFd, { vpasid: 5, ioasidFd, ioasid: b.ioasid }]);
    expect(b).toMatchObject({ vpasid: 5, vrids: [VRID_A], entry: { pgtt: 1, flptr: CR3 } });
    expect(b.snapshots[VRID_A]).toBe(encodePasidEntry(FL()).toString('hex'));
  });

  it('a cleared entry is torn down as exactly UNMAP_PASID, DISALLOW, DESTROY', async () => {
    const { hk, vm } = await setup();
    const baseline = hk.held();
    writeEntry(hk, vm, DIR_A, TABLE_A, 5, FL());
    await vm.viommu.invalidate(cacheWait(5));
    hk.calls.length = 0;
    writeEntry(hk, vm, DIR_A, TABLE_A, 5, CLEAR);
    expect(await vm.viommu.invalidate(cacheWait(5))).toEqual({ completed: 2, faults: [] });
    expect(hk.mutatingCalls()).toEqual(['unmapPasid', 'disallowIoasid', 'destroy']);
    expect(vm.viommu.bindings()).toEqual([]);
    expect(hk.held()).toEqual(baseline);
  });

  it('a changed pointer tears down then sets up again; an unchanged entry does nothing', async () => {
    const { hk, vm } = await setup();
    writeEntry(hk, vm, DIR_A, TABLE_A, 5, FL());
    await vm.viommu.invalidate(cacheWait(5));
    hk.calls.length = 0;
    await vm.viommu.invalidate(cacheWait(5));
    expect(hk.mutatingCalls()).toEqual([]);
    writeEntry(hk, vm, DIR_A, TABLE_A, 5, FL(0x20000));
    await vm.viommu.invalidate(cacheWait(5));
    expect(hk.mutatingCalls()).toEqual(['unmapPasid', 'disallowIoasid', 'destroy', 'alloc', 'bindPgtbl', 'allowIoasid', 'mapPasid']);
    expect(vm.viommu.bindings()[0].entry).toEqual({ pgtt: 1, flptr: 0x20000 });
  });

  it('pass-through (PGTT 4) becomes a nested ioasid with no root', async () => {
    const { hk, vm } = await setup();
    writeEntry(hk, vm, DIR_A, TABLE_A, 7, { present: true, pgtt: 4, flpm: 0, flptr: 0 });
    await vm.viommu.invalidate(cacheWait(7));
    expect(hk.log.find((c) => c.op === 'bindPgtbl')?.args[2]).toEqual({ kind: 'nested', parent: vm.handles.gpaIoasid });
  });

  it('the same vPASID on two vrids shares one host ioasid: the second only ALLOWs, removing one only DISALLOWs', async () => {
    const { hk, vm } = await setup();
    writeEntry(hk, vm, DIR_A, TABLE_A, 3, FL());
    await vm.viommu.invalidate(cacheWait(3));
    hk.calls.length = 0;
    writeEntry(hk, vm, DIR_B, TABLE_B, 3, FL());
    await vm.viommu.invalidate(cacheWait(3));
    expect(hk.mutatingCalls()).toEqual(['allowIoasid']);
    expect(vm.viommu.bindings()[0].vrids).toEqual([VRID_A, VRID_B]);
    hk.calls.length = 0;
    writeEntry(hk, vm, DIR_A, TABLE_A, 3, CLEAR);
    await vm.viommu.invalidate(cacheWait(3));
    expect(hk.mutatingCalls()).toEqual(['disallowIoasid']);
    expect(vm.viommu.bindings()[0].vrids).toEqual([VRID_B]);
  });

  it('a different entry for the same vPASID on another vrid is refused (EBUSY fault), the first stays', async () => {
    const { hk, vm } = await setup();
    writeEntry(hk, vm, DIR_A, TABLE_A, 3, FL());
    await vm.viommu.invalidate(cacheWait(3));
    hk.calls.length = 0;
    writeEntry(hk, vm, DIR_B, TABLE_B, 3, FL(0x20000));
    const res = await vm.viommu.invalidate(cacheWait(3));
    expect(res.faults).toEqual([expect.objectContaining({ vrid: VRID_B, vpasid: 3, code: VMM_FAULT_REASONS['vmm-entry-conflict'].code, errno: 'EBUSY' })]);
    expect(hk.mutatingCalls()).toEqual([]);
    expect(vm.viommu.bindings()[0].vrids).toEqual([VRID_A]);
  });

  it('global pasid-cache (no vpasid) finds every present entry and every stale binding', async () => {
    const { hk, vm } = await setup();
    writeEntry(hk, vm, DIR_A, TABLE_A, 1, FL());
    writeEntry(hk, vm, DIR_A, 0x5000, 70, FL(0x20000));
    expect(await vm.viommu.invalidate([{ type: 'pasid-cache' }])).toEqual({ completed: 1, faults: [] });
    expect(vm.viommu.bindings().map((b) => b.vpasid)).toEqual([1, 70]);
    writeEntry(hk, vm, DIR_A, 0x5000, 70, CLEAR);
    await vm.viommu.invalidate([{ type: 'pasid-cache' }]);
    expect(vm.viommu.bindings().map((b) => b.vpasid)).toEqual([1]);
  });
});

describe('vIOMMU validation: every refusal is a fault with zero host state changes', () => {
  const reserved = (): Buffer => {
    const b = encodePasidEntry(FL());
    b[8] = 1; // qword 1 must be zero
    return b;
  };
  const cases: Array<[string, number, (hk: FakeHostKernel, vm: Vm) => void, ViommuFaultReason, number | null]> = [
    ['PGTT 2 (second-level)', 5, (hk, vm) => writeEntry(hk, vm, DIR_A, TABLE_A, 5, { ...FL(), pgtt: 2 }), 'pasid-entry-invalid', VRID_A],
    ['PGTT 3 (nested)', 5, (hk, vm) => writeEntry(hk, vm, DIR_A, TABLE_A, 5, { ...FL(), pgtt: 3 }), 'pasid-entry-invalid', VRID_A],
    ['PGTT 0', 5, (hk, vm) => writeEntry(hk, vm, DIR_A, TABLE_A, 5, { ...FL(), pgtt: 0 }), 'pasid-entry-invalid', VRID_A],
    ['FLPM 1 (5-level)', 5, (hk, vm) => writeEntry(hk, vm, DIR_A, TABLE_A, 5, { ...FL(), flpm: 1 }), 'pasid-entry-invalid', VRID_A],
    ['pass-through with FLPM 1', 5, (hk, vm) => writeEntry(hk, vm, DIR_A, TABLE_A, 5, { present: true, pgtt: 4, flpm: 1, flptr: 0 }), 'pasid-entry-invalid', VRID_A],
    ['pass-through with a non-zero FLPTR', 5, (hk, vm) => writeEntry(hk, vm, DIR_A, TABLE_A, 5, { present: true, pgtt: 4, flpm: 0, flptr: CR3 }), 'pasid-entry-invalid', VRID_A],
    ['FLPTR outside RAM', 5, (hk, vm) => writeEntry(hk, vm, DIR_A, TABLE_A, 5, FL(RAM)), 'pasid-entry-invalid', VRID_A],
    ['reserved bits in the entry', 5, (hk, vm) => writeEntry(hk, vm, DIR_A, TABLE_A, 5, reserved()), 'pasid-entry-reserved', VRID_A],
    ['PASID table outside RAM', 5, (hk, vm) => ram(hk, vm, DIR_A, 8).writeBigUInt64LE(encodePasidDirEntry({ present: true, tableGpa: RAM })), 'pasid-table-access-error', VRID_A],
    ['reserved bits in the directory entry', 5, (hk, vm) => ram(hk, vm, DIR_A, 8).writeBigUInt64LE(encodePasidDirEntry({ present: true, tableGpa: TABLE_A }) | 0x10n), 'pasid-dir-reserved', VRID_A],
    ['vPASID 0 (RID_PASID)', 0, () => undefined, 'rid-pasid-error', null],
    ['vPASID ≥ 2^15 (one directory page)', 1 << 15, () => undefined, 'pasid-too-large', null],
    ['vPASID ≥ 2^20', 1 << 20, () => undefined, 'pasid-too-large', null],
    ['vPASID beyond the device PASID width', 300, (hk, vm) => writeEntry(hk, vm, DIR_B, TABLE_B, 300, FL()), 'pasid-too-large', VRID_B],
  ];
  it.each(cases)('%s', async (_name, vpasid, write, reason, vrid) => {
    const { hk, vm } = await setup({ widthB: 8 });
    const baseline = hk.held();
    write(hk, vm);
    const res = await vm.viommu.invalidate(cacheWait(vpasid));
    expect(res.completed).toBe(2);
    expect(res.faults).toEqual([expect.objectContaining({ vrid, vpasid, code: viommuFaultReason(reason).code, reason: viommuFaultReason(reason).text })]);
    expect(hk.mutatingCalls()).toEqual([]);
    expect(hk.held()).toEqual(baseline);
    expect(vm.viommu.bindings()).toEqual([]);
    expect(vm.viommu.faults()).toEqual(res.faults);
  });

  it('an entry that turns invalid tears the old binding down and faults', async () => {
    const { hk, vm } = await setup();
    writeEntry(hk, vm, DIR_A, TABLE_A, 5, FL());
    await vm.viommu.invalidate(cacheWait(5));
    hk.calls.length = 0;
    writeEntry(hk, vm, DIR_A, TABLE_A, 5, { ...FL(), pgtt: 2 });
    const res = await vm.viommu.invalidate(cacheWait(5));
    expect(res.faults).toHaveLength(1);
    expect(hk.mutatingCalls()).toEqual(['unmapPasid', 'disallowIoasid', 'destroy']);
  });

  it('per-VM quota: the vPASID beyond it faults with ENOSPC and no host call; another VM is unaffected', async () => {
    const { hk, vm } = await setup({ quota: 2 });
    for (const v of [1, 2, 3]) writeEntry(hk, vm, DIR_A, TABLE_A, v, FL(CR3 + v * 0x1000));
    const res = await vm.viommu.invalidate([...cacheWait(1), ...cacheWait(2)]);
    expect(res).toEqual({ completed: 4, faults: [] });
    hk.calls.length = 0;
    const over = await vm.viommu.invalidate(cacheWait(3));
    expect(over.faults).toEqual([expect.objectContaining({ vrid: VRID_A, vpasid: 3, errno: 'ENOSPC', code: VMM_FAULT_REASONS['vmm-pasid-quota'].code })]);
    expect(hk.mutatingCalls()).toEqual([]);

    const other = await setup({ quota: 2 });
    writeEntry(other.hk, other.vm, DIR_A, TABLE_A, 3, FL());
    expect(await other.vm.viommu.invalidate(cacheWait(3))).toEqual({ completed: 2, faults: [] });
    // freeing one slot lets the refused vPASID in
    writeEntry(hk, vm, DIR_A, TABLE_A, 1, CLEAR);
    expect((await vm.viommu.invalidate([...cacheWait(1), ...cacheWait(3)])).faults).toEqual([]);
    expect(vm.viommu.bindings().map((b) => b.vpasid)).toEqual([2, 3]);
  });
});

describe('vIOMMU host failures while mirroring', () => {
  it.each([
    ['alloc', ['alloc']],
    ['bindPgtbl', ['alloc', 'bindPgtbl', 'destroy']],
    ['allowIoasid', ['alloc', 'bindPgtbl', 'allowIoasid', 'destroy']],
    ['mapPasid', ['alloc', 'bindPgtbl', 'allowIoasid', 'mapPasid', 'disallowIoasid', 'destroy']],
  ])('%s failing unwinds in reverse and becomes a fault carrying the host errno', async (op, expected) => {
    const { hk, vm } = await setup();
    const baseline = hk.held();
    writeEntry(hk, vm, DIR_A, TABLE_A, 5, FL());
    hk.failWhen = (o) => (o === op ? 'ENOSPC' : null);
    const res = await vm.viommu.invalidate(cacheWait(5));
    expect(res.completed).toBe(2);
    expect(res.faults).toEqual([expect.objectContaining({ vrid: VRID_A, vpasid: 5, errno: 'ENOSPC', code: VMM_FAULT_REASONS['vmm-host-refused'].code })]);
    expect(JSON.stringify(res)).not.toContain('injected');
    expect(hk.mutatingCalls()).toEqual(expected);
    expect(hk.held()).toEqual(baseline);
    expect(vm.viommu.bindings()).toEqual([]);
  });
});

describe('vIOMMU invalidation queue', () => {
  it('refuses a batch with an unknown type or bad field with EINVAL before running anything', async () => {
    const { hk, vm } = await setup();
    writeEntry(hk, vm, DIR_A, TABLE_A, 5, FL());
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
    expect(hk.calls).toEqual([]);
    expect(vm.viommu.bindings()).toEqual([]);
  });

  it('a lone wait completes at once', async () => {
    const { hk, vm } = await setup();
    expect(await vm.viommu.invalidate([{ type: 'wait' }])).toEqual({ completed: 1, faults: [] });
    expect(await vm.viommu.invalidate([])).toEqual({ completed: 0, faults: [] });
    expect(hk.calls).toEqual([]);
  });

  it('piotlb invalidates the vPASID\'s ioasid (range or all); an unbound vPASID is a no-op', async () => {
    const { hk, vm } = await setup();
    writeEntry(hk, vm, DIR_A, TABLE_A, 5, FL());
    await vm.viommu.invalidate(cacheWait(5));
    const ioasid = vm.viommu.bindings()[0].ioasid;
    await vm.viommu.invalidate([
      { type: 'piotlb', vpasid: 5, addr: 0x7f0000000000, npages: 2 },
      { type: 'piotlb', vpasid: 5, addr: 0x1000, length: 100 },
      { type: 'piotlb', vpasid: 5 },
      { type: 'piotlb', vpasid: 9 },
      { type: 'wait' },
    ]);
    expect(hk.invalidations).toEqual([
      { ioasid, range: { iova: 0x7f0000000000, length: 0x2000 } },
      { ioasid, range: { iova: 0x1000, length: 0x1000 } },
      { ioasid },
    ]);
  });

  it('concurrent batches run one after another, in submission order', async () => {
    const { hk, vm } = await setup();
    writeEntry(hk, vm, DIR_A, TABLE_A, 5, FL());
    const a = vm.viommu.invalidate(cacheWait(5));
    writeEntry(hk, vm, DIR_A, TABLE_A, 6, FL());
    const b = vm.viommu.invalidate(cacheWait(6));
    await Promise.all([a, b]);
    expect(hk.mutatingCalls()).toEqual(['alloc', 'bindPgtbl', 'allowIoasid', 'mapPasid', 'alloc', 'bindPgtbl', 'allowIoasid', 'mapPasid']);
  });
});

describe('vIOMMU and VM teardown, host faults', () => {
  it('teardown first unbinds every vPASID (UNMAP_PASID, DISALLOW, DESTROY), then the VM; nothing left', async () => {
    const { hk, vm, builder } = await setup();
    writeEntry(hk, vm, DIR_A, TABLE_A, 1, FL());
    writeEntry(hk, vm, DIR_B, TABLE_B, 1, FL());
    writeEntry(hk, vm, DIR_A, TABLE_A, 2, FL(0x20000));
    await vm.viommu.invalidate([...cacheWait(1), ...cacheWait(2)]);
    hk.calls.length = 0;
    expect(await builder.teardown(vm)).toEqual([]);
    expect(hk.calls.slice(0, 7)).toEqual(['unmapPasid', 'disallowIoasid', 'destroy', 'unmapPasid', 'disallowIoasid', 'disallowIoasid', 'destroy']);
    expect(hk.calls.at(-1)).toBe('killProcess');
    expect(hk.held()).toEqual([]);
    expect(hk.implicitReleases).toEqual([]);
    await expect(vm.viommu.invalidate([{ type: 'wait' }])).rejects.toMatchObject({ errno: 'ENODEV' });
  });

  it('translates host fault records to virtual ids only', async () => {
    const { hk, vm } = await setup();
    writeEntry(hk, vm, DIR_A, TABLE_A, 5, FL());
    await vm.viommu.invalidate(cacheWait(5));
    const ppasid = vm.viommu.bindings()[0].ioasid;
    const f = vm.viommu.translateHostFault({ bdf: '0000:6a:01.0', pasid: ppasid, address: 0x7f0000001000, access: 'write', reason: `pasid ${ppasid} of host pid 4242 not present` });
    expect(f).toMatchObject({ vrid: VRID_A, vpasid: 5, address: 0x7f0000001000, access: 'write', errno: 'EFAULT' });
    // Unknown host prose never reaches the guest (it could name host fds, pids, the pPASID): a fixed text does.
    expect(f?.detail).toBe('DMA fault with a reason the vIOMMU does not model');
    expect(JSON.stringify(f)).not.toMatch(/4242|not present/);
    const known = vm.viommu.translateHostFault({ bdf: '0000:6b:01.0', pasid: null, address: 0x5000, access: 'read', reason: 'fl-not-present' });
    expect(known).toMatchObject({ vrid: VRID_B, vpasid: 0, code: VTD_FAULT_REASONS['fl-not-present'].code, reason: VTD_FAULT_REASONS['fl-not-present'].text });
    expect(vm.viommu.translateHostFault({ bdf: '0000:99:01.0', pasid: ppasid, address: 0, access: 'read', reason: 'x' })).toBeNull();
    expect(vm.viommu.translateHostFault({ bdf: '0000:6a:01.0', pasid: ppasid + 100, address: 0, access: 'read', reason: 'x' })).toBeNull();
    expect(vm.viommu.faults()).toHaveLength(2);
  });
});

describe('vIOMMU page requests (stub)', () => {
  it('queues a host page request in virtual ids and answers it once', async () => {
    const { hk, vm } = await setup();
    writeEntry(hk, vm, DIR_A, TABLE_A, 5, FL());
    await vm.viommu.invalidate(cacheWait(5));
    const ppasid = vm.viommu.bindings()[0].ioasid;
    const pr = vm.viommu.translateHostPageRequest({ bdf: '0000:6a:01.0', pasid: ppasid, address: 0x7f0000000000, access: 'write' });
    expect(pr).toEqual({ seq: 1, vrid: VRID_A, vpasid: 5, address: 0x7f0000000000, access: 'write' });
    expect(vm.viommu.pageRequests()).toEqual([pr]);
    expect(vm.viommu.pageResponse(1, true)).toEqual({ bdf: '0000:6a:01.0', ppasid, address: 0x7f0000000000, success: true });
    expect(() => vm.viommu.pageResponse(1, true)).toThrow(expect.objectContaining({ errno: 'ENOENT' }));
    expect(vm.viommu.translateHostPageRequest({ bdf: '0000:6a:01.0', pasid: ppasid + 1, address: 0, access: 'read' })).toBeNull();
  });
});
