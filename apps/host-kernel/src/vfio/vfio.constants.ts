/** PASID capability Max PASID Width is at most 20 (PCIe 6.0 §7.8.8.2); 0 here = no PASID capability. */
export const MAX_PASID_WIDTH = 20;
/** Upper bound on a shared work queue's depth (sanity bound of this simulation; DSA WQ size is 16-bit). */
export const MAX_WQ_DEPTH = 65535;
/** PCI vendor/device ids are 16-bit (PCI 3.0 §6.2.1). */
export const PCI_ID_MAX = 0xffff;
