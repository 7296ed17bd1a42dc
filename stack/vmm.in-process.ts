// The in-process adapter of VmmPort (DESIGN §8) for one VM: every method is what the VMM's REST route calls,
// with the VM's token through the same bearer-token rule, so the guest's calls journal exactly as over REST.
import type { Descriptor, EnqcmdResult } from '@app/shared/contract/host-kernel';
import type { GuestMachine, GuestPageResponse, InvalidationDescriptor, InvalidationResult, VirtualPageRequest } from '@app/shared/contract/vmm';
import type { AuthKind } from '@app/shared/auth/bearer';
import type { Lifeline, LifelineHandlers } from '@app/shared/lifeline/event-sink';
import { GuestRam } from '@app/shared/memory/guest-ram';
import { openMemHandle } from '@app/shared/memory/mem-file';
import type { VmmPort } from '../apps/guest/src/vmm.port';
import type { VmmApp } from '../apps/vmm/src/vmm.app';
import type { VmmCaller } from '../apps/vmm/src/vmm-caller';
import { copy, cross, lifeline, type Side } from './crossing';

export class InProcessVmm implements VmmPort {
  constructor(
    readonly vmm: VmmApp,
    private readonly from: Side,
    readonly vmId: number,
    private readonly token: string,
  ) {}

  private call<T>(kind: AuthKind, fn: (caller: VmmCaller) => Promise<T> | T): Promise<T> {
    return cross(this.from, { app: 'vmm', clock: this.vmm.journal.clock }, () => fn(this.vmm.authorize(kind, this.token, this.vmId)));
  }

  holdLifeline(opts: LifelineHandlers & { auditUrl?: string | null }): Lifeline {
    return lifeline(opts, (sink) => this.call('caller', (caller) => this.vmm.vms.attachGuest(caller, this.vmId, sink)), (sink) => void this.vmm.vms.guestDropped(this.vmId, sink));
  }

  machine(): Promise<GuestMachine> {
    return this.call('caller-or-admin', (caller) => this.vmm.hardware.machine(caller, this.vmId));
  }
  /** The answer crosses as REST's does (the file's handle and size); the handle then maps the file, as over REST. */
  async mapRam(): Promise<GuestRam> {
    const r = await this.call('caller', (caller) => this.vmm.hardware.ram(caller, this.vmId));
    return new GuestRam(openMemHandle(r.handle).bytes.subarray(0, r.size));
  }
  readMemory(gpa: number, length: number): Promise<Buffer> {
    return this.call('caller', (caller) => this.vmm.hardware.readMemory(caller, this.vmId, gpa, length));
  }
  writeMemory(gpa: number, data: Buffer): Promise<void> {
    return this.call('caller', (caller) => this.vmm.hardware.writeMemory(caller, this.vmId, gpa, copy(data)));
  }
  setContext(vrid: number, pasidDirGpa: number): Promise<void> {
    return this.call('caller', (caller) => this.vmm.viommu.setContext(caller, this.vmId, vrid, pasidDirGpa));
  }
  invalidate(descriptors: InvalidationDescriptor[]): Promise<InvalidationResult> {
    return this.call('caller', (caller) => this.vmm.viommu.invalidate(caller, this.vmId, copy(descriptors)));
  }
  wrmsr(vcpu: number, msr: 'IA32_PASID', value: number): Promise<void> {
    return this.call('caller', (caller) => this.vmm.hardware.wrmsr(caller, this.vmId, vcpu, msr, value));
  }
  enqcmd(vcpu: number, vrid: number, descriptor: Descriptor): Promise<EnqcmdResult> {
    return this.call('caller', (caller) => this.vmm.hardware.enqcmd(caller, this.vmId, vcpu, vrid, copy(descriptor)));
  }
  pageRequests(): Promise<VirtualPageRequest[]> {
    return this.call('caller', (caller) => this.vmm.viommu.pageRequests(caller, this.vmId));
  }
  pageResponse(r: GuestPageResponse): Promise<void> {
    return this.call('caller', (caller) => this.vmm.viommu.pageResponse(caller, this.vmId, copy(r)));
  }
}
