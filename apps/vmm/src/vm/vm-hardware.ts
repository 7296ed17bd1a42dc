// The virtual hardware a guest sees (DESIGN §3, §5 VMM table): guest-physical memory, vCPU instructions
// (WRMSR IA32_PASID, ENQCMD, ENQCMDS) and the machine description. Every call is checked in guest terms
// (its own VM, a vCPU it has, a vrid it has, RAM it has) before a host call is made on its behalf.
import type { Descriptor, EnqcmdResult } from '@app/shared/contract/host-kernel';
import { KernelError } from '@app/shared/errno';
import type { Journal } from '@app/shared/journal/journal';
import { memFileHandle } from '@app/shared/memory/mem-file';
import type { Machine } from '../machine/machine';
import { requireVm, type VmmCaller } from '../vmm-caller';
import { onBehalfOfGuest } from './guest-errors';
import type { Vm } from './vm-builder';
import type { VmManager } from './vm-manager';

export class VmHardware {
  constructor(
    private readonly vms: VmManager,
    private readonly journal: Journal,
  ) {}

  /** What the guest may know: RAM size, vCPUs, devices by virtual RID. */
  machine(caller: VmmCaller, id: number): Machine {
    requireVm(caller, id, true);
    return this.vms.machine(id);
  }

  /**
   * Guest-physical write (DMA-visible RAM), made as QEMU's address_space_write on its own mapping of guest RAM: into
   * the memory file the host's KVM and DMA see, with no host call. Journaled here: it came from outside the guest.
   */
  async writeMemory(caller: VmmCaller, id: number, gpa: number, data: Buffer): Promise<void> {
    requireVm(caller, id);
    const vm = this.vms.running(id);
    await this.journal.run({ operation: 'guest.write_memory', actor: `vm:${id}`, args: { gpa, length: data.length } }, async () => {
      checkRam(vm.ramBytes, gpa, data.length);
      vm.ram.write(gpa, data);
    });
  }

  async readMemory(caller: VmmCaller, id: number, gpa: number, length: number): Promise<Buffer> {
    requireVm(caller, id);
    const vm = this.vms.running(id);
    checkRam(vm.ramBytes, gpa, length);
    return vm.ram.read(gpa, length);
  }

  /**
   * The VM's RAM, for its guest to map (as QEMU hands a vhost-user backend its memfd): the memory file's handle, a
   * capability in guest terms (no host path or pid), only to the VM's own token, never journaled.
   */
  ram(caller: VmmCaller, id: number): { handle: string; size: number } {
    requireVm(caller, id);
    const vm = this.vms.running(id);
    return { handle: memFileHandle(vm.ramFile), size: vm.ramBytes };
  }

  /** WRMSR IA32_PASID on a vCPU (a vPASID: KVM translates it at ENQCMD). */
  async wrmsr(caller: VmmCaller, id: number, n: number, msr: 'IA32_PASID', value: number): Promise<void> {
    requireVm(caller, id);
    const vm = this.vms.running(id);
    await this.journal.run({ operation: 'vcpu.wrmsr', actor: `vm:${id}`, object: `vcpu:${id}/${n}`, args: { msr, value } }, () => {
      const vcpu = vcpuOf(vm, n);
      return onBehalfOfGuest('WRMSR', () => vm.port.vcpuWrmsr(vm.handles.vmFd, vcpu, value));
    });
  }

  /** ENQCMD on a vCPU to a device's portal: the guest gets ZF (accepted/retry) or #GP, never a host PASID. */
  enqcmd(caller: VmmCaller, id: number, n: number, vrid: number, descriptor: Descriptor): Promise<EnqcmdResult> {
    return this.submit('vcpu.enqcmd', caller, id, n, { vrid, descriptor }, (vm, vcpu, deviceFd) => vm.port.vcpuEnqcmd(vm.handles.vmFd, vcpu, deviceFd, descriptor));
  }

  /** ENQCMDS on a vCPU (guest kernel mode): the vPASID comes from the descriptor; KVM translates it the same way. */
  enqcmds(caller: VmmCaller, id: number, n: number, a: { vrid: number; descriptor: Descriptor; pasid: number; privileged: boolean }): Promise<EnqcmdResult> {
    return this.submit('vcpu.enqcmds', caller, id, n, a, (vm, vcpu, deviceFd) => vm.port.vcpuEnqcmds(vm.handles.vmFd, vcpu, deviceFd, a.descriptor, a.pasid, a.privileged));
  }

  private submit(
    operation: 'vcpu.enqcmd' | 'vcpu.enqcmds',
    caller: VmmCaller,
    id: number,
    n: number,
    args: { vrid: number; descriptor: Descriptor },
    run: (vm: Vm, vcpu: number, deviceFd: number) => Promise<EnqcmdResult>,
  ): Promise<EnqcmdResult> {
    requireVm(caller, id);
    const vm = this.vms.running(id);
    return this.journal.run({ operation, actor: `vm:${id}`, object: `vcpu:${id}/${n}`, args }, async () => {
      const device = vm.handles.devices.find((d) => d.vrid === args.vrid);
      if (!device || device.deviceFd === undefined) throw new KernelError('ENODEV', `no device at vrid 0x${args.vrid.toString(16)}`);
      const vcpu = vcpuOf(vm, n);
      return onBehalfOfGuest(operation, () => run(vm, vcpu, device.deviceFd as number));
    });
  }
}

function vcpuOf(vm: Vm, n: number): number {
  const vcpus = vm.handles.vcpus;
  if (!Number.isInteger(n) || n < 0 || n >= vcpus.length) throw new KernelError('EINVAL', `no vcpu ${n}: the VM has ${vcpus.length}`);
  return vcpus[n];
}

/** Guest RAM is [0, memoryMiB MiB): anything else is not this guest's to touch. */
function checkRam(ramBytes: number, gpa: number, length: number): void {
  if (!Number.isSafeInteger(gpa) || gpa < 0 || gpa + length > ramBytes) throw new KernelError('EFAULT', `gpa range [0x${gpa.toString(16)}, +${length}) is outside guest RAM`);
}
