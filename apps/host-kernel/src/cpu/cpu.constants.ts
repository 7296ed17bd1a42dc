/** Only MSR this model implements (arch/x86/include/asm/msr-index.h: MSR_IA32_PASID 0xd93). */
export const MSR_IA32_PASID = 'IA32_PASID';
/** IA32_PASID bits 19:0 = PASID, bit 31 = valid; bits 30:20 and 63:32 reserved (Intel SDM Vol. 4, MSR 0xD93). */
export const IA32_PASID_PASID_MASK = 0xfffff;
export const IA32_PASID_VALID = 0x8000_0000;
