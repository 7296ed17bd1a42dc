// PCI addressing shared by the host kernel (VFIO, device config) and the VMM (devices assigned to a VM).

/** PCI address domain:bus:device.function, lower-case hex, as Linux prints it (pci_name(): "%04x:%02x:%02x.%d"). */
export const BDF_PATTERN = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]$/;
