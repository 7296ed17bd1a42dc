// The vIOMMU's refusals: a PASID entry it will not mirror, a quota, and a host call that fails midway. Each is a
// fault the guest reads, and the host is left exactly as it was.
import { encodePasidDirEntry, encodePasidEntry } from '@app/shared/vtd/pasid-entry';
import { VTD_FAULT_REASONS } from '@app/shared/vtd/vtd.constants';
import { VmBuilder, type Vm } from '../vm/vm-builder';
import { PAGE_SIZE as PAGE_BYTES } from '@app/shared/x86/pte';
import { VMM_FAULT_REASONS, viommuFaultReason, type ViommuFaultReason } from './viommu.constants';
// The host operations a mirror issues, then the bed and its guest's tables.
import {
  ALLOC, ALLOW, BIND, DESTROY, DISALLOW, MAP_PASID, TEARDOWN, UNMAP_PASID,
  cacheWait, CLEAR, closeHosts, CR3, DIR_A, DIR_B, FL, OTHER_BDFS, RAM, setup, SPEC, TABLE_A, TABLE_B, VRID_A, VRID_B, writeEntry, writeU64,
} from '../../../../stack/fixtures/vm';

afterEach(closeHosts);

describe('vIOMMU validation: every refusal is a fault with zero host state changes', () => {
  /** Device B's PASID width in these cases: a vPASID of 2^8 or more does not fit it. */
  const WIDTH_B = 8;
  const reserved = (): Buffer => {
    const b = encodePasidEntry(FL());
    b[8] = 1; // qword 1 must be zero
    return b;
  };
  const cases: Array<[string, number, (vm: Vm) => Promise<void>, ViommuFaultReason, number | null]> = [
    ['PGTT 2 (second-level)', 5, (vm) => writeEntry(vm, DIR_A, TABLE_A, 5, { ...FL(), pgtt: 2 }), 'pasid-entry-invalid', VRID_A],
    ['PGTT 3 (nested)', 5, (vm) => writeEntry(vm, DIR_A, TABLE_A, 5, { ...FL(), pgtt: 3 }), 'pasid-entry-invalid', VRID_A],
    ['PGTT 0', 5, (vm) => writeEntry(vm, DIR_A, TABLE_A, 5, { ...FL(), pgtt: 0 }), 'pasid-entry-invalid', VRID_A],
    ['FLPM 1 (5-level)', 5, (vm) => writeEntry(vm, DIR_A, TABLE_A, 5, { ...FL(), flpm: 1 }), 'pasid-entry-invalid', VRID_A],
    ['pass-through with FLPM 1', 5, (vm) => writeEntry(vm, DIR_A, TABLE_A, 5, { present: true, pgtt: 4, flpm: 1, flptr: 0 }), 'pasid-entry-invalid', VRID_A],
    ['pass-through with a non-zero FLPTR', 5, (vm) => writeEntry(vm, DIR_A, TABLE_A, 5, { present: true, pgtt: 4, flpm: 0, flptr: CR3 }), 'pasid-entry-invalid', VRID_A],
    ['FLPTR outside RAM', 5, (vm) => writeEntry(vm, DIR_A, TABLE_A, 5, FL(RAM)), 'pasid-entry-invalid', VRID_A],
    ['reserved bits in the entry', 5, (vm) => writeEntry(vm, DIR_A, TABLE_A, 5, reserved()), 'pasid-entry-reserved', VRID_A],
    ['PASID table outside RAM', 5, (vm) => writeU64(vm, DIR_A, encodePasidDirEntry({ present: true, tableGpa: RAM })), 'pasid-table-access-error', VRID_A],
    ['reserved bits in the directory entry', 5, (vm) => writeU64(vm, DIR_A, encodePasidDirEntry({ present: true, tableGpa: TABLE_A }) | 0x10n), 'pasid-dir-reserved', VRID_A],
    ['vPASID 0 (RID_PASID)', 0, async () => undefined, 'rid-pasid-error', null],
    ['vPASID ≥ 2^15 (one directory page)', 1 << 15, async () => undefined, 'pasid-too-large', null],
    ['vPASID ≥ 2^20', 1 << 20, async () => undefined, 'pasid-too-large', null],
    ['vPASID beyond the device PASID width', 1 << WIDTH_B, (vm) => writeEntry(vm, DIR_B, TABLE_B, 1 << WIDTH_B, FL()), 'pasid-too-large', VRID_B],
  ];
  it.each(cases)('%s', async (_name, vpasid, write, reason, vrid) => {
    const { host, vm } = await setup({ widthB: WIDTH_B });
    await write(vm);
    const before = host.state();
    const mark = await host.mark();
    const res = await vm.viommu.invalidate(cacheWait(vpasid));
    expect(res.completed).toBe(2);
    expect(res.faults).toEqual([expect.objectContaining({ vrid, vpasid, code: viommuFaultReason(reason).code, reason: viommuFaultReason(reason).text })]);
    // The host was asked for nothing: no row in its journal, its state unchanged.
    expect(await host.rows(mark)).toEqual([]);
    expect(host.state()).toEqual(before);
    expect(vm.viommu.bindings()).toEqual([]);
    expect(vm.viommu.faults()).toEqual(res.faults);
  });

  it('an entry that turns invalid tears the old binding down and faults', async () => {
    const { host, vm, baseline } = await setup();
    await writeEntry(vm, DIR_A, TABLE_A, 5, FL());
    await vm.viommu.invalidate(cacheWait(5));
    await writeEntry(vm, DIR_A, TABLE_A, 5, { ...FL(), pgtt: 2 });
    const mark = await host.mark();
    const res = await vm.viommu.invalidate(cacheWait(5));
    expect(res.faults).toEqual([expect.objectContaining({ vrid: VRID_A, vpasid: 5, code: VTD_FAULT_REASONS['pasid-entry-invalid'].code })]);
    expect(await host.ops(mark)).toEqual(TEARDOWN);
    expect(host.state()).toEqual(baseline);
  });

  it('per-VM quota: the vPASID beyond it faults with ENOSPC and no host call; another VM on the host is unaffected', async () => {
    const { host, vm } = await setup({ quota: 2 });
    for (const v of [1, 2, 3]) await writeEntry(vm, DIR_A, TABLE_A, v, FL(CR3 + v * PAGE_BYTES));
    expect(await vm.viommu.invalidate([...cacheWait(1), ...cacheWait(2)])).toEqual({ completed: 4, faults: [] });
    const mark = await host.mark();
    const over = await vm.viommu.invalidate(cacheWait(3));
    expect(over.faults).toEqual([expect.objectContaining({ vrid: VRID_A, vpasid: 3, errno: 'ENOSPC', code: VMM_FAULT_REASONS['vmm-pasid-quota'].code })]);
    expect(await host.rows(mark)).toEqual([]);

    // A second VM on the same host, with its own devices and its own quota of 2, binds its vPASID 3.
    const other = await new VmBuilder(host.port).build({ ...SPEC, name: 'other', devices: OTHER_BDFS, pasidQuota: 2 });
    await other.viommu.setContext(VRID_A, DIR_A);
    await writeEntry(other, DIR_A, TABLE_A, 3, FL());
    expect(await other.viommu.invalidate(cacheWait(3))).toEqual({ completed: 2, faults: [] });
    expect(host.state().vms.map((k) => [k.pid, k.pasids.map((p) => p.vpasid)])).toEqual([
      [vm.handles.pid, [1, 2]],
      [other.handles.pid, [3]],
    ]);
    // freeing one slot lets the refused vPASID in
    await writeEntry(vm, DIR_A, TABLE_A, 1, CLEAR);
    expect((await vm.viommu.invalidate([...cacheWait(1), ...cacheWait(3)])).faults).toEqual([]);
    expect(vm.viommu.bindings().map((b) => b.vpasid)).toEqual([2, 3]);
  });
});

/** The host operation each door method issues (stack/host-kernel.in-process.ts). */
const OPS: Record<string, string> = {
  alloc: ALLOC,
  bindPgtbl: BIND,
  allowIoasid: ALLOW,
  mapPasid: MAP_PASID,
  unmapPasid: UNMAP_PASID,
  disallowIoasid: DISALLOW,
  destroy: DESTROY,
};

describe('vIOMMU host failures while mirroring', () => {
  it.each([
    ['alloc', ['alloc']],
    ['bindPgtbl', ['alloc', 'bindPgtbl', 'destroy']],
    ['allowIoasid', ['alloc', 'bindPgtbl', 'allowIoasid', 'destroy']],
    ['mapPasid', ['alloc', 'bindPgtbl', 'allowIoasid', 'mapPasid', 'disallowIoasid', 'destroy']],
  ])('%s failing unwinds in reverse and becomes a fault carrying the host errno', async (method, expected) => {
    const { host, vm, baseline } = await setup();
    await writeEntry(vm, DIR_A, TABLE_A, 5, FL());
    const mark = await host.mark();
    host.failWhen((m) => (m === method ? 'ENOSPC' : null));
    const res = await vm.viommu.invalidate(cacheWait(5));
    expect(res.completed).toBe(2);
    expect(res.faults).toEqual([expect.objectContaining({ vrid: VRID_A, vpasid: 5, errno: 'ENOSPC', code: VMM_FAULT_REASONS['vmm-host-refused'].code })]);
    expect(JSON.stringify(res)).not.toContain('injected');
    expect(host.calls()).toEqual(expected);
    // Everything before the refusal reached the host and was undone there, explicitly: the host is as it was.
    expect(await host.ops(mark)).toEqual(expected.filter((m) => m !== method).map((m) => OPS[m]));
    expect(host.state()).toEqual(baseline);
    expect(vm.viommu.bindings()).toEqual([]);
  });
});
