/** KVM_MAX_VCPUS on x86 (arch/x86/include/asm/kvm_host.h). */
export const KVM_MAX_VCPUS = 1024;
/** Guest-physical addresses stay below 2^52 (x86 MAXPHYADDR ≤ 52, Intel SDM Vol. 3A §4.1.4). */
export const GPA_LIMIT = 2 ** 52;
