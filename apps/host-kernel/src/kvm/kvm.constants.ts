/** KVM_MAX_VCPUS on x86 (arch/x86/include/asm/kvm_host.h). */
export const KVM_MAX_VCPUS = 1024;
/** Guest-physical addresses stay below 2^52 (x86 MAXPHYADDR ≤ 52, Intel SDM Vol. 3A §4.1.4). */
export const GPA_LIMIT = 2 ** 52;
/** Only MSR this model implements (arch/x86/include/asm/msr-index.h: MSR_IA32_PASID 0xd93). */
export const MSR_IA32_PASID = 'IA32_PASID';
