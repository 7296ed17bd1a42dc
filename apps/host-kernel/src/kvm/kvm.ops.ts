// KVM calls (DESIGN §2): VM fds with memslots and vCPUs, guest-physical access, and the VMCS vPASID→pPASID
// table that ENQCMD on a vCPU translates through (MAP_PASID / UNMAP_PASID). The caller never names a pPASID.
import type { Descriptor, EnqcmdResult } from '@app/shared/contract/host-kernel';
import type { KernelFile } from '../process/fd-table';
import type { Process } from '../process/process';
import { guestEnqcmd, guestEnqcmds, prepareEnqcmd } from '../cpu/enqcmd';
import { devicePortal } from '../cpu/portal';
import type { DeviceSet } from '../devices/device-set';
import { fdArg, type HostCaller, type OpCall, opsFor } from '../dispatch/op';
import { fdget } from '../ioasid/fdget';
import type { IoasidLayer } from '../ioasid/ioasid-layer';
import type { Kvm } from './kvm';
import { KvmVm } from './kvm-vm';

interface Deps {
  ioasids: IoasidLayer;
  kvm: Kvm;
  accelerators: DeviceSet;
}

const op = opsFor<Deps, Process>();
type C<F extends KernelFile = never> = OpCall<Deps, F, Process>;
const vmFd = fdArg('vmFd', 'kvm-vm', KvmVm);
const pidOf = (caller: HostCaller): number | string => (caller.kind === 'process' ? caller.pid : caller.kind);
const vmObject = (a: { vmFd: number }, _r: unknown, caller: HostCaller): string => `fd:${pidOf(caller)}/${a.vmFd}`;
const vcpuObject = (a: { vmFd: number; vcpu: number }, _r: unknown, caller: HostCaller): string => `vcpu:${pidOf(caller)}/${a.vmFd}/${a.vcpu}`;

export const kvmOps = {
  /** KVM_CREATE_VM. */
  createVm: op({
    name: 'kvm.create_vm',
    permit: 'process',
    journal: true,
    run: ({ k, proc, tx }: C, _a: Record<string, never>) => ({ fd: k.kvm.createVm(tx, proc) }),
    object: (_a, r, caller) => (r ? `fd:${pidOf(caller)}/${r.fd}` : null),
  }),

  /** KVM_SET_USER_MEMORY_REGION: GPA range → the caller's hva range. */
  setMemslot: op({
    name: 'kvm.set_memslot',
    permit: 'process',
    journal: true,
    fd: vmFd,
    run: ({ file, tx }: C<KvmVm>, a: { vmFd: number; gpa: number; size: number; hva: number }) => file.addMemslot(tx, { gpa: a.gpa, size: a.size, hva: a.hva }),
    object: vmObject,
  }),

  /** KVM_CREATE_VCPU: vCPUs are numbered 0, 1, 2, … */
  createVcpu: op({
    name: 'kvm.create_vcpu',
    permit: 'process',
    journal: true,
    fd: vmFd,
    run: ({ file, tx }: C<KvmVm>, _a: { vmFd: number }) => ({ vcpu: file.createVcpu(tx) }),
    object: vmObject,
  }),

  /** Guest-physical write through the memslots (EFAULT outside them, nothing written). */
  writeGuest: op({
    name: 'kvm.write_guest',
    permit: 'process',
    journal: true,
    fd: vmFd,
    run: ({ file, tx }: C<KvmVm>, a: { vmFd: number; gpa: number; data: Buffer }) => file.writeGuest(tx, a.gpa, a.data),
    args: (a) => ({ vmFd: a.vmFd, gpa: a.gpa, length: a.data.length }),
  }),

  /** Guest-physical read through the memslots. */
  readGuest: op({
    name: 'kvm.read_guest',
    permit: 'process',
    journal: false,
    fd: vmFd,
    run: ({ file }: C<KvmVm>, a: { vmFd: number; gpa: number; length: number }) => file.readGuest(a.gpa, a.length),
  }),

  /** Enables (or disables) the VM's vPASID→pPASID translation for ENQCMD. */
  pasidTranslation: op({
    name: 'kvm.pasid_translation',
    permit: 'process',
    journal: true,
    fd: vmFd,
    run: ({ file, tx }: C<KvmVm>, a: { vmFd: number; enabled: boolean }) => file.setPasidTranslation(tx, a.enabled),
    object: vmObject,
  }),

  /** MAP_PASID: vPASID → the ioasid's PASID, validated through the ioasid layer; takes a reference. */
  mapPasid: op({
    name: 'kvm.map_pasid',
    permit: 'process',
    journal: true,
    fd: vmFd,
    run: ({ k, proc, file, tx }: C<KvmVm>, a: { vmFd: number; vpasid: number; ioasidFd: number; ioasid: number }) => {
      file.checkVpasid(a.vpasid);
      file.mapPasid(tx, a.vpasid, fdget(k.ioasids, proc.fds, a.ioasidFd, a.ioasid));
    },
    object: (a) => `ioasid:${a.ioasid}`,
  }),

  /** UNMAP_PASID: clears the entry and drops its reference; the row names the pPASID it let go of. */
  unmapPasid: op({
    name: 'kvm.unmap_pasid',
    permit: 'process',
    journal: true,
    fd: vmFd,
    run: ({ file, tx }: C<KvmVm>, a: { vmFd: number; vpasid: number }) => ({ ioasid: file.unmapPasid(tx, a.vpasid) }),
    object: (_a, r) => (r === undefined ? null : `ioasid:${r.ioasid}`),
  }),

  /** WRMSR on a vCPU (IA32_PASID: bits 19:0 vPASID, bit 31 valid). */
  vcpuWrmsr: op({
    name: 'kvm.vcpu_wrmsr',
    permit: 'process',
    journal: true,
    fd: vmFd,
    run: ({ file, tx }: C<KvmVm>, a: { vmFd: number; vcpu: number; msr: string; value: number }) => file.vcpuWrmsr(tx, a.vcpu, a.msr, a.value),
    object: vcpuObject,
  }),

  /** ENQCMD from a vCPU: #GP if IA32_PASID is invalid, VM exit → #GP if the vPASID is unmapped, else ZF=0/1. */
  vcpuEnqcmd: op({
    name: 'kvm.vcpu_enqcmd',
    permit: 'process',
    journal: true,
    fd: vmFd,
    run: ({ k, proc, file, tx }: C<KvmVm>, a: { vmFd: number; vcpu: number; deviceFd: number; descriptor: Descriptor }): EnqcmdResult => {
      const ia32Pasid = file.vcpuRdmsr(a.vcpu, 'IA32_PASID');
      const portal = devicePortal(k.accelerators, proc, a.deviceFd);
      return guestEnqcmd(tx, ia32Pasid, file, portal, prepareEnqcmd(portal, a.descriptor));
    },
    object: vcpuObject,
  }),

  /** ENQCMDS on a vCPU (guest kernel mode): the PASID comes from the descriptor and is translated like ENQCMD's. */
  vcpuEnqcmds: op({
    name: 'kvm.vcpu_enqcmds',
    permit: 'process',
    journal: true,
    fd: vmFd,
    run: ({ k, proc, file, tx }: C<KvmVm>, a: { vmFd: number; vcpu: number; deviceFd: number; descriptor: Descriptor; pasid: number; privileged: boolean }): EnqcmdResult => {
      file.vcpuRdmsr(a.vcpu, 'IA32_PASID'); // the vCPU must exist (ENOENT), as for ENQCMD
      const portal = devicePortal(k.accelerators, proc, a.deviceFd);
      return guestEnqcmds(tx, file, portal, prepareEnqcmd(portal, a.descriptor), a.pasid, a.privileged);
    },
    object: vcpuObject,
  }),
};
