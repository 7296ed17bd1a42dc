// The guest's unit tests run on the real stack (DESIGN §8), not on an imitation of the VMM: a host kernel and a
// VMM from the real code run one VM, and the guest code under test reaches it through its own door, InProcessVmm
// (a real VmmPort). What a test says about the VMM or the host it reads from them: their journals, the VM's
// vIOMMU, KVM's vCPUs and vPASID table, the accelerators, guest RAM read back through the port.
import { LamportClock } from '@app/shared/clock';
import type { Journal, JournalEvent } from '@app/shared/journal/journal';
import { InProcessStack, type InProcessStackOptions, STACK_DEVICES, type VmHandle } from '../../../stack/in-process-stack';
import { InProcessVmm } from '../../../stack/vmm.in-process';
import type { Accelerator } from '../../host-kernel/src/devices/accelerator';
import { hwOps } from '../../host-kernel/src/hw/hw.ops';
import { kernelState } from '../../host-kernel/src/kernel-state';
import { KvmVm } from '../../host-kernel/src/kvm/kvm-vm';
import type { Vm } from '../../vmm/src/vm/vm-builder';
import type { GuestMachine, InvalidationDescriptor } from './vmm.port';

export const DSA0 = STACK_DEVICES[0].bdf;
export const DSA1 = STACK_DEVICES[1].bdf;
export const MIB = 1024 * 1024;

export interface VmOnStackSpec {
  memoryMiB?: number;
  vcpus?: number;
  devices?: string[];
}

/** Lets queued macrotasks run (engine ticks, lifeline events). */
export const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const started = new Set<VmOnStack>();

export class VmOnStack {
  private constructor(
    readonly stack: InProcessStack,
    readonly vm: VmHandle,
    /** The guest's door to its VMM. */
    readonly port: InProcessVmm,
    readonly machine: GuestMachine,
  ) {}

  /** A stack with one VM (defaults: 2 MiB, 1 vCPU, no device); closed by closeAll(). */
  static async start(spec: VmOnStackSpec = {}, opts: InProcessStackOptions = {}): Promise<VmOnStack> {
    const stack = await InProcessStack.create(opts);
    try {
      const vm = await stack.createVm({ name: 'guest-under-test', memoryMiB: spec.memoryMiB ?? 2, vcpus: spec.vcpus ?? 1, devices: spec.devices ?? [] });
      const port = new InProcessVmm(stack.vmm, { app: 'guest', clock: new LamportClock() }, vm.id, vm.token);
      const bed = new VmOnStack(stack, vm, port, await port.machine());
      started.add(bed);
      return bed;
    } catch (err) {
      await stack.close();
      throw err;
    }
  }

  /** Closes every stack started in this test file (afterEach). */
  static async closeAll(): Promise<void> {
    const all = [...started];
    started.clear();
    for (const bed of all) await bed.stack.close();
  }

  get ramBytes(): number {
    return this.machine.memoryMiB * MIB;
  }

  /** The virtual RID the VMM gave the host device `bdf`. */
  vrid(bdf: string): number {
    const d = this.machine.devices.find((x) => x.bdf === bdf);
    if (!d) throw new Error(`the VM has no device ${bdf}`);
    return d.vrid;
  }

  /** The VMM's side of the VM: handles, and its vIOMMU (bindings, faults, contexts). */
  get running(): Vm {
    return this.stack.vmm.vms.running(this.vm.id);
  }

  get viommu(): Vm['viommu'] {
    return this.running.viommu;
  }

  /** Guest RAM as it is now, read through the guest's door. */
  ram(): Promise<Buffer> {
    return this.port.readMemory(0, this.ramBytes);
  }

  /** What KVM's vCPU n of this VM holds in IA32_PASID. */
  ia32Pasid(n = 0): number {
    const h = this.running.handles;
    return this.stack.host.kernel.procs.get(h.pid).fds.get(h.vmFd, 'kvm-vm', KvmVm).vcpuRdmsr(h.vcpus[n], 'IA32_PASID');
  }

  /** KVM's vPASID → pPASID table of this VM. */
  kvmPasids(): { vpasid: number; ppasid: number; translates: boolean }[] {
    const h = this.running.handles;
    const vm = kernelState(this.stack.host.kernel).vms.find((v) => v.pid === h.pid && v.fd === h.vmFd);
    if (!vm) throw new Error(`the host has no KVM VM for vm ${this.vm.id}`);
    return vm.pasids;
  }

  accelerator(bdf: string): Accelerator {
    return this.stack.host.kernel.accelerators.accelerator(bdf);
  }

  /** Stalls or resumes a device's engine, as an operator does with the admin token (hw.engine). */
  async setEngine(bdf: string, running: boolean): Promise<void> {
    await this.stack.host.dispatcher.exec(hwOps.engine, this.stack.host.authorize(hwOps.engine, this.stack.hostAdminToken), { bdf, running });
  }

  /** The VMM's journal rows of these operations, oldest first. */
  vmmRows(...operations: string[]): Promise<JournalEvent[]> {
    return rowsOf(this.stack.vmm.journal, operations);
  }

  hostRows(...operations: string[]): Promise<JournalEvent[]> {
    return rowsOf(this.stack.host.journal, operations);
  }

  /** Every invalidation batch the guest queued, as the VMM journaled it (viommu.invalidate args). */
  async invalidations(): Promise<InvalidationDescriptor[][]> {
    return (await this.vmmRows('viommu.invalidate')).map((r) => (r.args as { descriptors: InvalidationDescriptor[] }).descriptors);
  }
}

async function rowsOf(journal: Journal, operations: string[]): Promise<JournalEvent[]> {
  const out: JournalEvent[] = [];
  for (const operation of operations) {
    for (let page = await journal.events({ operation, limit: 10_000 }); page.length > 0; page = await journal.events({ operation, limit: 10_000, afterSeq: page.at(-1)?.seq })) {
      out.push(...page);
    }
  }
  return out.sort((a, b) => a.seq - b.seq);
}
