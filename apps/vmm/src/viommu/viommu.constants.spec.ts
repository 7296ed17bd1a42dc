import { VTD_FAULT_REASONS } from '@app/shared/vtd/vtd.constants';
import { VMM_FAULT_REASONS, viommuFaultReason } from './viommu.constants';

describe('vIOMMU fault reasons', () => {
  it("the VMM's own codes are software-defined (≥ 0xf0) and never shadow a VT-d reason", () => {
    const vtdCodes = new Set<number>(Object.values(VTD_FAULT_REASONS).map((r) => r.code));
    for (const [name, r] of Object.entries(VMM_FAULT_REASONS)) {
      expect([name, r.code >= 0xf0 && r.code <= 0xff, vtdCodes.has(r.code)]).toEqual([name, true, false]);
    }
    expect(new Set(Object.values(VMM_FAULT_REASONS).map((r) => r.code)).size).toBe(Object.keys(VMM_FAULT_REASONS).length);
  });

  it('a VT-d reason is reported with the code and text of the shared table', () => {
    expect(viommuFaultReason('pasid-entry-invalid')).toBe(VTD_FAULT_REASONS['pasid-entry-invalid']);
    expect(viommuFaultReason('vmm-pasid-quota')).toBe(VMM_FAULT_REASONS['vmm-pasid-quota']);
  });
});
