// Intel VT-d scalable mode (Intel VT-d spec rev 3.x/4.x): PASID formats (§9.4-§9.6) and fault reasons
// (§7.1.3 table "Address translation faults"; codes as in QEMU hw/i386/intel_iommu_internal.h VTDFaultReason
// and VirtualBox include/VBox/iommu-intel.h VTDADDRFAULT).

/** PASID directory: 8-byte entries indexed by PASID[19:6] (VT-d §9.4). */
export const PASID_DIR_ENTRY_SIZE = 8;
/** PASID table: 64 entries of 64 bytes indexed by PASID[5:0] (VT-d §9.6). */
export const PASID_TABLE_ENTRIES = 64;
export const PASID_ENTRY_SIZE = 64;
/** PASID width: 20 bits (PCIe 6.0 §6.20 PASID TLP prefix; VT-d §3.4 scalable-mode PASID table); 0 is "no PASID" (RID_PASID). */
export const PASID_BITS = 20;
/** Exclusive upper bound of every pPASID / vPASID: [1, 2^20). */
export const PASID_LIMIT = 1 << PASID_BITS;

/** PASID-table entry qword 0 bits 8:6 PGTT (VT-d §9.6). */
export enum Pgtt {
  FirstLevel = 1,
  SecondLevel = 2,
  Nested = 3,
  PassThrough = 4,
}
/** FLPM (qword 2 bits 3:2): 0 = 4-level first-stage paging, 1 = 5-level. */
export const FLPM_4_LEVEL = 0;

export interface VtdFaultReasonInfo {
  /** Fault reason code reported in the fault recording register. */
  code: number;
  /** The spec's condition id (SPT.2, SFL.3, …). */
  condition: string;
  /** The spec's wording, shortened. */
  text: string;
}

/**
 * The VT-d fault reasons this project reports (host IOMMU and vIOMMU alike), by short kebab name. Several names
 * share a code where the model distinguishes causes the hardware reports identically (e.g. a never-programmed
 * route and a blocked one are both a PASID entry with P = 0, because Linux blocks a PASID by tearing its entry
 * down). Codes a VMM defines for its own refusals (≥ 0xf0) are not VT-d reasons and live with that VMM.
 */
export const VTD_FAULT_REASONS = {
  // Context-entry checks (rev 3.x SCT.7 / SCT.9; texts of Linux dmar.c dma_remap_sm_fault_reasons). Only the
  // vIOMMU reports them: the host model has no context entries.
  'pasid-too-large': { code: 0x46, condition: 'SCT.7', text: 'SM: PASID is larger than the max in Context Entry' },
  'rid-pasid-error': { code: 0x48, condition: 'SCT.9', text: 'SM: RID_PASID field error in Context-Entry' },
  'pasid-dir-access-error': { code: 0x50, condition: 'SPD.1', text: 'SM: Error reading PASID directory entry' },
  'pasid-dir-not-present': { code: 0x51, condition: 'SPD.2', text: 'SM: Present bit in PASID directory entry is clear' },
  'pasid-dir-reserved': { code: 0x52, condition: 'SPD.3', text: 'SM: Non-zero reserved field in PASID directory entry' },
  'pasid-table-access-error': { code: 0x58, condition: 'SPT.1', text: 'SM: Error reading PASID table entry' },
  'pasid-entry-not-present': { code: 0x59, condition: 'SPT.2', text: 'SM: Present bit in PASID entry is clear' },
  'pasid-entry-reserved': { code: 0x5a, condition: 'SPT.3', text: 'SM: Non-zero reserved field in PASID entry' },
  'pasid-entry-invalid': { code: 0x5b, condition: 'SPT.4', text: 'SM: Invalid programming of PASID entry (PGTT, FLPM)' },
  'no-route': { code: 0x59, condition: 'SPT.2', text: 'No translation programmed for this requester/PASID (entry not present)' },
  'translation-blocked': { code: 0x59, condition: 'SPT.2', text: 'Translation blocked: the address space was destroyed' },
  'fl-table-access-error': { code: 0x70, condition: 'SFL.1', text: 'Error reading a first-stage paging entry' },
  'fl-not-present': { code: 0x71, condition: 'SFL.2', text: 'PTE not present (first stage)' },
  'fl-reserved': { code: 0x72, condition: 'SFL.3', text: 'Non-zero reserved field in a present first-stage paging entry' },
  'fl-large-page': { code: 0x72, condition: 'SFL.3', text: 'First-stage large page (PS) not supported: treated as reserved' },
  'fl-root-access-error': { code: 0x73, condition: 'SFL.4', text: 'Error reading the first-stage root (FLPTR) entry' },
  'fl-non-canonical': { code: 0x80, condition: 'SGN.1', text: 'Non-canonical input address for first-stage translation' },
  // QEMU VTD_FR_FS_PAGING_ENTRY_US: a user-mode request (PR = 0) to a page whose U/S is 0 at some level.
  'fl-privilege-denied': { code: 0x81, condition: 'SGN.2', text: 'User-mode request (PR=0) to a supervisor page (U/S=0), first stage' },
  'address-beyond-width': { code: 0x84, condition: 'SGN.5', text: 'Input address above the address width' },
  'fl-write-denied': { code: 0x85, condition: 'SGN.6', text: 'Write access to read-only page (first stage)' },
  'fl-ad-update-failed': { code: 0x91, condition: 'SFL.10', text: 'Accessed/dirty update of a first-stage entry failed' },
  'sl-table-not-present': { code: 0x79, condition: 'SSL.2', text: 'First-stage table GPA not mapped in the second stage (nested)' },
  'sl-not-present': { code: 0x79, condition: 'SSL.2', text: 'Second-stage entry not present' },
  'sl-write-denied': { code: 0x85, condition: 'SGN.6', text: 'Write access to read-only page (second stage)' },
  'sl-read-denied': { code: 0x86, condition: 'SGN.7', text: 'Read access to a page without read permission (second stage)' },
} as const satisfies Record<string, VtdFaultReasonInfo>;

export type VtdFaultReason = keyof typeof VTD_FAULT_REASONS;

export function isVtdFaultReason(name: unknown): name is VtdFaultReason {
  return typeof name === 'string' && Object.prototype.hasOwnProperty.call(VTD_FAULT_REASONS, name);
}
