// Host IOMMU (Intel VT-d scalable mode): fault reasons are the VT-d ones (libs/shared vtd.constants, VT-d spec §7.1.3).
import { VTD_FAULT_REASONS } from '@app/shared/vtd/vtd.constants';

export const FAULT_REASONS = VTD_FAULT_REASONS;
export type FaultReason = keyof typeof FAULT_REASONS;

/** IOTLB entries kept before the least recently used is evicted (hardware IOTLBs hold a few thousand). */
export const IOTLB_DEFAULT_CAPACITY = 4096;
/**
 * Fault records kept before the oldest is overwritten. VT-d keeps CAP.NFR (≤ 256) fault recording registers and
 * drops new faults on overflow (FSTS.PFO); Linux's dmar_fault handler drains them into its log, which is what this is.
 */
export const FAULT_LOG_CAPACITY = 4096;
