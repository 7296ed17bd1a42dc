// Guest vIOMMU driver constants (VT-d scalable mode, Intel VT-d spec §9.4-9.6; Linux drivers/iommu/intel/pasid.h).

/** The guest registers one 4 KiB PASID directory per device: 512 entries × 64 = 2^15 vPASIDs (PDTS = 2). */
export const GUEST_VPASID_LIMIT = 1 << 15;
/** PASID 0 is RID_PASID (IOMMU_NO_PASID in Linux): never handed to a process. */
export const GUEST_VPASID_MIN = 1;
