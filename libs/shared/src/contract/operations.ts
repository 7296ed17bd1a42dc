// Every operation a journal row can name, per app: the journal contract. Each app's dispatcher declares its
// operations by these names (host-kernel: the *.ops.ts tables; a test checks both lists match), and the audit
// fold, the sequence renderer, the CLI and the tests import them from here. `label` is how a diagram names
// the call: the /dev/ioasid, VFIO and KVM ioctl of the design where there is one (DESIGN §2, §4).

export const HOST_OPERATIONS = {
  'kernel.boot': { label: 'boot' },
  'process.create': { label: 'fork+exec' },
  'process.get': { label: 'ps' },
  'process.exit': { label: 'exit' },
  'mm.mmap': { label: 'mmap' },
  'mm.write': { label: 'write memory' },
  'mm.read': { label: 'read memory' },
  'fd.close': { label: 'close' },
  'cpu.wrmsr': { label: 'WRMSR' },
  'cpu.enqcmd': { label: 'ENQCMD' },
  'cpu.enqcmds': { label: 'ENQCMDS' },
  'ioasid.open': { label: 'open /dev/ioasid' },
  'ioasid.alloc': { label: 'IOASID_ALLOC' },
  'ioasid.list': { label: 'IOASID_LIST' },
  'ioasid.info': { label: 'IOASID_GET_INFO' },
  'ioasid.bind_pgtbl': { label: 'IOASID_BIND_PGTBL' },
  'ioasid.map': { label: 'IOASID_MAP_DMA' },
  'ioasid.unmap': { label: 'IOASID_UNMAP_DMA' },
  'ioasid.invalidate': { label: 'IOASID_INVALIDATE' },
  'ioasid.destroy': { label: 'IOASID_DESTROY' },
  'fault.alloc': { label: 'IOMMU_FAULT_QUEUE_ALLOC' },
  'fault.destroy': { label: 'IOMMU_DESTROY (fault queue)' },
  'fault.read': { label: 'read(fault queue)' },
  'fault.respond': { label: 'write(fault queue): page response' },
  'vfio.list_devices': { label: 'list devices' },
  'vfio.open': { label: 'open VFIO device' },
  'vfio.allow_ioasid': { label: 'VFIO_DEVICE_ALLOW_IOASID' },
  'vfio.disallow_ioasid': { label: 'VFIO_DEVICE_DISALLOW_IOASID' },
  'kvm.create_vm': { label: 'KVM_CREATE_VM' },
  'kvm.set_memslot': { label: 'KVM_SET_USER_MEMORY_REGION' },
  'kvm.create_vcpu': { label: 'KVM_CREATE_VCPU' },
  'kvm.write_guest': { label: 'write guest memory' },
  'kvm.read_guest': { label: 'read guest memory' },
  'kvm.pasid_translation': { label: 'KVM_ENABLE_PASID_TRANSLATION' },
  'kvm.map_pasid': { label: 'KVM_MAP_PASID' },
  'kvm.unmap_pasid': { label: 'KVM_UNMAP_PASID' },
  'kvm.vcpu_wrmsr': { label: 'WRMSR (vCPU)' },
  'kvm.vcpu_enqcmd': { label: 'ENQCMD (vCPU)' },
  'kvm.vcpu_enqcmds': { label: 'ENQCMDS (vCPU)' },
  'hw.pasids': { label: 'PASID pool' },
  'hw.limits': { label: 'resource limits' },
  'hw.faults': { label: 'IOMMU fault log' },
  'hw.page_requests': { label: 'IOMMU page request queue' },
  'hw.dma': { label: 'device DMA' },
  'hw.engine': { label: 'device engine' },
} as const satisfies Record<string, { label: string }>;

/** Rows the host kernel writes for what happened inside (or outside) a call: `event.<kind>`. */
export const HOST_EVENTS = {
  'event.fault': { label: 'IOMMU fault' },
  'event.device-completion': { label: 'completion record' },
  'event.device-fault': { label: 'device fault' },
  'event.device-error': { label: 'device error' },
  'event.page-request': { label: 'page request group' },
  'event.page-response': { label: 'page group response' },
  'event.ioasid-destroyed': { label: 'ioasid parked' },
  'event.ioasid-freed': { label: 'PASID freed' },
  'event.process-exit': { label: 'process exit' },
} as const satisfies Record<string, { label: string }>;

export const VMM_OPERATIONS = {
  'vm.create': { label: 'create VM' },
  'vm.destroy': { label: 'destroy VM' },
  'vm.restore': { label: 'restore VM' },
  'vm.start': { label: 'power on VM' },
  'vm.stopped': { label: 'VM stopped' },
  'vm.guest_exit': { label: 'guest exit' },
  'guest.write_memory': { label: 'write guest memory' },
  'vcpu.wrmsr': { label: 'WRMSR' },
  'vcpu.enqcmd': { label: 'ENQCMD' },
  'vcpu.enqcmds': { label: 'ENQCMDS' },
  'viommu.set_context': { label: 'set PASID directory' },
  'viommu.invalidate': { label: 'invalidation queue' },
  'viommu.page_request': { label: 'page request (to the guest)' },
  'viommu.page_response': { label: 'page group response' },
} as const satisfies Record<string, { label: string }>;

export const GUEST_OPERATIONS = {
  'guest.boot': { label: 'boot' },
  'process.create': { label: 'fork+exec' },
  'mm.mmap': { label: 'mmap' },
  'mm.munmap': { label: 'munmap' },
  'mm.write': { label: 'write memory' },
  'sva.bind': { label: 'iommu_sva_bind_device' },
  'sva.unbind': { label: 'iommu_sva_unbind_device' },
  'accel.submit': { label: 'submit descriptor' },
  'viommu.fault': { label: 'vIOMMU fault' },
  'viommu.page_request': { label: 'page request' },
  'sva.page_fault': { label: 'iommu_sva_handle_iopf' },
} as const satisfies Record<string, { label: string }>;

export type HostOperation = keyof typeof HOST_OPERATIONS;
export type HostEvent = keyof typeof HOST_EVENTS;
export type VmmOperation = keyof typeof VMM_OPERATIONS;
export type GuestOperation = keyof typeof GUEST_OPERATIONS;
/** Any operation a journal row of any app may name. */
export type Operation = HostOperation | HostEvent | VmmOperation | GuestOperation;

const LABELS: Record<string, Record<string, { label: string }>> = {
  'host-kernel': { ...HOST_OPERATIONS, ...HOST_EVENTS },
  vmm: VMM_OPERATIONS,
  guest: GUEST_OPERATIONS,
};

/** How a diagram names `operation` of `app` (the ioctl name where there is one); unknown ones as they are. */
export function operationLabel(app: string, operation: string): string {
  return LABELS[app]?.[operation]?.label ?? operation;
}
