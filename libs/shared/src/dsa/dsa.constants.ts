// Intel DSA descriptor and completion record (Intel DSA Architecture Specification §8.1/§8.3; Linux
// include/uapi/linux/idxd.h struct dsa_hw_desc, struct dsa_completion_record, enum dsa_opcode, DSA_COMP_*).

export const DESCRIPTOR_SIZE = 64;
export const COMPLETION_RECORD_SIZE = 32;
/** The completion record must be 32-byte aligned (DSA §8.3.3; misaligned → DSA_COMP_CRA_ALIGN). */
export const COMPLETION_RECORD_ALIGN = 32;

/** Opcodes (enum dsa_opcode). */
export const DsaOpcode = {
  noop: 0x00,
  memmove: 0x03,
  fill: 0x04,
  compare: 0x05,
} as const;
export type DsaOp = keyof typeof DsaOpcode;

/** Descriptor flags, bytes 4..6 (IDXD_OP_FLAG_*). */
export const DsaFlag = {
  fence: 1 << 0,
  blockOnFault: 1 << 1,
  /** Completion Record Address Valid. */
  crav: 1 << 2,
  /** Request Completion Record (on success; errors are recorded whenever CRAV is set). */
  rcr: 1 << 3,
  /** Request Completion Interrupt. */
  rci: 1 << 4,
} as const;
/**
 * Flags this device implements; any other flag is DSA_COMP_INVALID_FLAGS. Fence waits for every earlier descriptor
 * of the queue (blocked ones included); block-on-fault waits for page requests instead of completing on a fault.
 */
export const DSA_SUPPORTED_FLAGS = DsaFlag.fence | DsaFlag.blockOnFault | DsaFlag.crav | DsaFlag.rcr;

/** Dword 0: PASID in bits 19:0, bit 31 privileged (U/S); bits 30:20 reserved. */
export const DESC_PASID_MASK = 0xfffff;
export const DESC_PRIV_BIT = 0x8000_0000;

/**
 * Completion status byte. 1-3 are DESIGN §5 (normative here): DSA itself reports a page fault as 0x03 and a
 * compare mismatch as success with result 1. 4 (aborted by a PASID drain) is this project's addition.
 * 0x10+ are the DSA error codes (DSA_COMP_*).
 */
export const CompletionStatus = {
  none: 0x00,
  success: 0x01,
  pageFault: 0x02,
  compareMismatch: 0x03,
  aborted: 0x04,
  badOpcode: 0x10,
  invalidFlags: 0x11,
  nonZeroReserved: 0x12,
  transferSizeRange: 0x13,
  /** DSA_COMP_CRA_ALIGN: never written (the record has nowhere to go); reported as a device error event. */
  completionAlign: 0x1b,
  /** DSA_COMP_TRANSLATION_FAIL: used for an address field the model cannot represent (≥ 2^53). */
  translationFail: 0x22,
} as const;

/** fault_info byte (@2) of a page-fault completion: bit 0 = the faulting access was a write. */
export const FAULT_INFO_WRITE = 0x01;
/** result byte of a memmove fault: 1 = the copy ran backwards (overlapping, dst > src), as DSA reports. */
export const RESULT_MEMMOVE_BACKWARD = 0x01;
/** result byte of a compare: 1 = buffers differ (DSA), alongside status 3. */
export const RESULT_COMPARE_MISMATCH = 0x01;
