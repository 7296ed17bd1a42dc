// Scalable-mode vIOMMU constants: Intel VT-d spec rev 3.x (ch. 9.4-9.6, 6.5.2, 7.1.3) and the fault reason
// strings of Linux drivers/iommu/intel/dmar.c (dma_remap_sm_fault_reasons); QEMU keeps them in
// hw/i386/intel_iommu_internal.h.
import { isVtdFaultReason, VTD_FAULT_REASONS, type VtdFaultReason } from '@app/shared/vtd/vtd.constants';

/** PASIDs are 20 bits (VT-d 3.x §3.4.1, ECAP.PSS = 19); PASID 0 is RID_PASID, the VMM's own GPA space. */
export const VPASID_MIN = 1;

/** The guest registers a one-page PASID directory: 512 entries × 64 PASIDs = 2^15 vPASIDs (context PDTS = 2, VT-d §9.4). */
export const PASID_DIR_BYTES = 4096;
export const VIOMMU_VPASID_BITS = 15;

/** Per-VM budget of bound vPASIDs (host PASIDs are a global 20-bit resource shared by every VM). */
export const DEFAULT_PASID_QUOTA = 64;
/** Fault recording keeps the newest records only, like the VT-d fault recording registers (FRCD, §10.4.14). */
export const FAULT_LOG_CAPACITY = 256;

/**
 * The vIOMMU's own refusals, with software-defined codes ≥ 0xf0: no VT-d fault reason covers a VMM policy (quota,
 * one address space per vPASID) or the host refusing a mirror. Every other fault the vIOMMU reports is a VT-d
 * reason of the shared table (libs/shared vtd.constants), code and text as there.
 */
export const VMM_FAULT_REASONS = {
  'vmm-pasid-quota': { code: 0xf0, text: 'VMM: PASID quota of this VM exhausted' },
  'vmm-entry-conflict': { code: 0xf1, text: 'VMM: PASID entry differs from the same vPASID on another device' },
  'vmm-host-refused': { code: 0xf2, text: 'VMM: host refused to mirror the PASID entry' },
  'vmm-host-fault': { code: 0xf3, text: 'VMM: DMA fault reported by the host IOMMU' },
  // VT-d reports a full PRQ in PRS_REG.PRO, a status bit; a guest of this vIOMMU reads it as this fault record.
  'vmm-prq-overflow': { code: 0xf4, text: 'VMM: page request queue overflow (group answered success, the device retries)' },
} as const satisfies Record<string, { code: number; text: string }>;

type VmmFaultReason = keyof typeof VMM_FAULT_REASONS;
/** A reason the vIOMMU can report: a VT-d one or one of its own. */
export type ViommuFaultReason = VtdFaultReason | VmmFaultReason;

/** Code and text of a reason the vIOMMU reports. */
export function viommuFaultReason(reason: ViommuFaultReason): { code: number; text: string } {
  return isVtdFaultReason(reason) ? VTD_FAULT_REASONS[reason] : VMM_FAULT_REASONS[reason];
}

/** Page-table types accepted in a guest PASID entry: first-level (nested over GPA) and pass-through. */
export const ACCEPTED_PGTT = [1, 4] as const;

/** Requests the guest page request queue holds: VT-d's 2048 (Linux PRQ_ORDER 4 pages of 32-byte descriptors). */
export const GUEST_PRQ_DEPTH = 2048;

/** Largest batch the invalidation queue accepts: 256 descriptors = the smallest VT-d queue (IQA_REG.QS = 0, §10.4.23). */
export const INVALIDATION_QUEUE_DEPTH = 256;
