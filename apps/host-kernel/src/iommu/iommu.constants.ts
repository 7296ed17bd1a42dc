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

/**
 * Faults a page request can resolve: a first- or second-stage leaf that is not present or lacks the access
 * (VT-d §7.1: such a translation request completes with R=W=0 and a PRI-capable device may ask for the page).
 * Every other reason (a blocked or missing route, a bad PASID entry, reserved bits, a non-canonical address,
 * an unreachable table) is non-recoverable: the device gets no page and the descriptor fails at once.
 */
export const RECOVERABLE_FAULTS: ReadonlySet<FaultReason> = new Set<FaultReason>([
  'fl-not-present',
  'fl-write-denied',
  'fl-privilege-denied',
  'sl-not-present',
  'sl-write-denied',
  'sl-read-denied',
]);

/**
 * Page requests the host page request queue holds at once: Linux VT-d allocates its PRQ as 2^PRQ_ORDER (4) pages
 * of 32-byte descriptors, 64 KiB = 2048 entries (drivers/iommu/intel/prq.c PRQ_ORDER, PRQ_RING_MASK). Here a
 * request occupies its entry until its group is answered (the model has no separate software queue).
 */
export const PRQ_DEFAULT_DEPTH = 2048;
/** DESIGN §6b PRQ_TIMEOUT_MS: a group nobody answered is answered invalid by the kernel (upstream has no timeout). */
export const PRQ_DEFAULT_TIMEOUT_MS = 10_000;
/** The page request group index is 9 bits (PCIe 6.0 §10.4.1 Page Request Message, PRG Index; VT-d prg_index:9). */
export const PRG_INDEX_BITS = 9;
export const PRG_INDEX_LIMIT = 1 << PRG_INDEX_BITS;
