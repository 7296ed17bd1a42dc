// IA32_PASID (MSR 0xD93, Linux MSR_IA32_PASID): written by the guest, read by KVM on ENQCMD (Intel SDM Vol. 4, Table 2-2).

/** IA32_PASID bit 31: the PASID field is valid; ENQCMD with it clear is #GP (Intel SDM Vol. 4, IA32_PASID bit 31). */
export const IA32_PASID_VALID = 0x8000_0000;
/** IA32_PASID bits 19:0: the PASID ENQCMD puts in the descriptor; bits 30:20 and 63:32 are reserved. */
export const IA32_PASID_PASID_MASK = 0xfffff;
