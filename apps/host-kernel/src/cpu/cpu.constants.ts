/** Only MSR this model implements (arch/x86/include/asm/msr-index.h: MSR_IA32_PASID 0xd93). */
export const MSR_IA32_PASID = 'IA32_PASID';
