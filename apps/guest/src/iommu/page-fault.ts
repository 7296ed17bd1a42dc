// The guest vIOMMU driver's page request handler: Linux's iommu_sva fault path (drivers/iommu/iommu-sva.c
// iommu_sva_iopf_handler → iommu_sva_handle_iopf → iommu_sva_handle_mm). The group names a vPASID: the process
// bound with it on that device is found (its mm->pasid), and each request is resolved in that process's address
// space as handle_mm_fault would (GuestMm.faultIn): inside a mapping, the page gets its frame → success; anything
// else (no such binding, an address in no mapping, an access the mapping does not allow) → invalid.
import type { GuestMm } from '../mm/guest-mm';
import type { VirtualPageRequest } from '../vmm.port';
import type { SvaDriver } from './sva';

export type PageFaultAnswer = 'success' | 'invalid';

export async function handlePageRequest(sva: Pick<SvaDriver, 'ownerOf'>, mm: Pick<GuestMm, 'faultIn'>, pr: VirtualPageRequest): Promise<{ pid: number | null; code: PageFaultAnswer }> {
  const owner = sva.ownerOf(pr.vpasid);
  // iommu_sva_handle_iopf finds the mm through the domain attached to (device, PASID): unbound means no mm.
  if (!owner || !owner.vrids.includes(pr.vrid)) return { pid: null, code: 'invalid' };
  return { pid: owner.pid, code: await mm.faultIn(owner.pid, pr.requests) };
}
