import type { Descriptor, EnqcmdResult } from '../contract/host-kernel';
import type { GuestPageResponse, VirtualPageRequest } from '../contract/vmm';
import type { Lifeline, LifelineHandlers } from '../lifeline/event-sink';
import { GuestRam } from '../memory/guest-ram';
import { openMemHandle } from '../memory/mem-file';
import { holdLifeline } from './lifeline';
import { RestClient } from './rest-client';

/** Typed client of the VMM as one guest sees it (its VM id and token), plus the management calls. */
export class VmmClient {
  constructor(
    readonly rest: RestClient,
    readonly vmId: number,
  ) {}

  machine<T>(): Promise<T> {
    return this.rest.get(`/v1/vms/${this.vmId}/machine`);
  }
  lifelineUrl(): string {
    return this.rest.url(`/v1/vms/${this.vmId}/lifeline`);
  }
  holdLifeline(opts: LifelineHandlers & { auditUrl?: string | null }): Lifeline {
    return holdLifeline(this.lifelineUrl(), { app: this.rest.opts.app, token: this.rest.opts.token ?? '', peerKey: this.rest.opts.peerKey, ...opts });
  }
  /** The VM's RAM, mapped in this process by its memory file's handle (POSIX shared memory). */
  async mapRam(): Promise<GuestRam> {
    const r = await this.rest.get<{ handle: string; size: number }>(`/v1/vms/${this.vmId}/ram`);
    return new GuestRam(openMemHandle(r.handle).bytes.subarray(0, r.size));
  }
  async readMemory(gpa: number, length: number): Promise<Buffer> {
    const r = await this.rest.get<{ data: string }>(`/v1/vms/${this.vmId}/memory`, { gpa, length });
    return Buffer.from(r.data, 'base64');
  }
  writeMemory(gpa: number, data: Buffer): Promise<void> {
    return this.rest.put(`/v1/vms/${this.vmId}/memory`, { gpa, data: data.toString('base64') });
  }
  setContext(vrid: number, pasidDirGpa: number): Promise<void> {
    return this.rest.put(`/v1/vms/${this.vmId}/viommu/context/${vrid}`, { pasidDirGpa });
  }
  invalidate<R>(descriptors: unknown[]): Promise<R> {
    return this.rest.post(`/v1/vms/${this.vmId}/viommu/invalidate`, { descriptors });
  }
  faults<T>(): Promise<T[]> {
    return this.rest.get(`/v1/vms/${this.vmId}/viommu/faults`);
  }
  wrmsr(vcpu: number, msr: 'IA32_PASID', value: number): Promise<void> {
    return this.rest.post(`/v1/vms/${this.vmId}/vcpus/${vcpu}/wrmsr`, { msr, value });
  }
  enqcmd(vcpu: number, vrid: number, descriptor: Descriptor): Promise<EnqcmdResult> {
    return this.rest.post(`/v1/vms/${this.vmId}/vcpus/${vcpu}/enqcmd`, { vrid, descriptor });
  }
  pageRequests(): Promise<VirtualPageRequest[]> {
    return this.rest.get(`/v1/vms/${this.vmId}/viommu/page-requests`);
  }
  pageResponse(r: GuestPageResponse): Promise<void> {
    return this.rest.post(`/v1/vms/${this.vmId}/viommu/page-response`, r);
  }
}
