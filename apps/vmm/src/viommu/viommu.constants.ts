// Scalable-mode vIOMMU constants: Intel VT-d spec rev 3.x (ch. 9.4-9.6, 6.5.2, 7.1.3) and the fault reason
// strings of Linux drivers/iommu/intel/dmar.c (dma_remap_sm_fault_reasons); QEMU keeps them in
// hw/i386/intel_iommu_internal.h.
import { VTD_FAULT_REASONS, type VtdFaultReason as VtdSharedReason } from '@app/shared/vtd/vtd.constants';

/** PASIDs are 20 bits (VT-d 3.x §3.4.1, ECAP.PSS = 19); PASID 0 is RID_PASID, the VMM's own GPA space. */
export const VPASID_MIN = 1;
export const VPASID_LIMIT = 1 << 20;

/** The guest registers a one-page PASID directory: 512 entries × 64 PASIDs = 2^15 vPASIDs (context PDTS = 2, VT-d §9.4). */
export const PASID_DIR_BYTES = 4096;
export const VIOMMU_VPASID_BITS = 15;

export const PAGE_BYTES = 4096;

/** Per-VM budget of bound vPASIDs (host PASIDs are a global 20-bit resource shared by every VM). */
export const DEFAULT_PASID_QUOTA = 64;
/** Fault recording keeps the newest records only, like the VT-d fault recording registers (FRCD, §10.4.14). */
export const FAULT_LOG_CAPACITY = 256;

/**
 * Fault reasons the vIOMMU reports to its guest. Codes and texts of the spec's conditions come from the
 * shared VT-d table (one spelling project-wide); 0x46/0x48 are the context-entry checks of VT-d §7.1.3
 * (names as in Linux dmar.c); codes ≥ 0xf0 are software-defined refusals of the VMM (policy or host).
 */
export const VtdFaultReason = {
  PASID_TOO_LARGE: { code: 0x46, name: 'SM: PASID is larger than the max in Context Entry' },
  RID_PASID: { code: 0x48, name: 'SM: RID_PASID field error in Context-Entry' },
  PASID_DIR_ACCESS: fromShared('pasid-dir-access-error'),
  PASID_DIR_ENTRY_RSVD: fromShared('pasid-dir-reserved'),
  PASID_TABLE_ACCESS: fromShared('pasid-table-access-error'),
  PASID_ENTRY_RSVD: fromShared('pasid-entry-reserved'),
  PASID_ENTRY_INV: fromShared('pasid-entry-invalid'),
  VMM_PASID_QUOTA: { code: 0xf0, name: 'VMM: PASID quota of this VM exhausted' },
  VMM_ENTRY_CONFLICT: { code: 0xf1, name: 'VMM: PASID entry differs from the same vPASID on another device' },
  VMM_HOST_REFUSED: { code: 0xf2, name: 'VMM: host refused to mirror the PASID entry' },
  VMM_HOST_FAULT: { code: 0xf3, name: 'VMM: DMA fault reported by the host IOMMU' },
} as const;

function fromShared(key: VtdSharedReason): { code: number; name: string } {
  return { code: VTD_FAULT_REASONS[key].code, name: VTD_FAULT_REASONS[key].text };
}

export type VtdFaultReasonKey = keyof typeof VtdFaultReason;

/** Page-table types accepted in a guest PASID entry: first-level (nested over GPA) and pass-through. */
export const ACCEPTED_PGTT = [1, 4] as const;

/** Largest batch the invalidation queue accepts: 256 descriptors = the smallest VT-d queue (IQA_REG.QS = 0, §10.4.23). */
export const INVALIDATION_QUEUE_DEPTH = 256;
