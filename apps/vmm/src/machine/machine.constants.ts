// Limits and encodings of the virtual machine the VMM presents to its guest.

/** PCI Requester ID = bus[15:8] | device[7:3] | function[2:0] (PCIe base spec, "Routing ID"). */
export const RID_BUS_SHIFT = 8;
export const RID_DEVICE_SHIFT = 3;
/** Virtual devices sit on bus 0, devices 1..31, function 0 (device 0 is left to the virtual host bridge, as in QEMU q35). */
export const VIRTUAL_BUS = 0;
export const FIRST_VIRTUAL_DEVICE = 1;
export const MAX_VIRTUAL_DEVICE = 31;
/** Guest RAM bounds in MiB: at least one MiB, at most what keeps every GPA below 2^53 comfortably. */
export const MIN_MEMORY_MIB = 1;
export const MAX_MEMORY_MIB = 65536;
/** KVM_CAP_MAX_VCPUS is much larger; a lab VM needs few. */
export const MAX_VCPUS = 64;
