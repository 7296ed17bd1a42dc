// PASID_LIMIT: the 20-bit PCIe / VT-d PASID space, see libs/shared vtd.constants.
import { PASID_LIMIT } from '@app/shared/vtd/vtd.constants';

/** PASID 0 is "no PASID": requests without a PASID prefix use the RID entry (Linux IOMMU_NO_PASID). */
export const NO_PASID = 0;
/** Ids the pool can hand out: [1, 2^20). */
export const PASID_POOL_SIZE = PASID_LIMIT - 1;
/** Highest IOVA + 1 an iova ioasid accepts: 4-level second-stage tables cover 48 bits (VT-d 4.x §3.7, SAGAW). */
export const IOVA_LIMIT = 2 ** 48;
/** A nested root is a guest first-level table GPA: 4 KiB aligned, below 2^52 (VT-d 4.x §9.6 FLPTR, MAW 52). */
export const NESTED_ROOT_LIMIT = 2 ** 52;
