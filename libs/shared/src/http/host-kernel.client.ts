import type {
  AllowMode,
  Descriptor,
  DeviceInfo,
  EnqcmdResult,
  FaultGroup,
  FaultRecord,
  FaultResponseCode,
  IoasidInfo,
  IoasidState,
  PageRequestQueueView,
  PasidPool,
  PgtblSpec,
  ProcessCreated,
} from '../contract/host-kernel';
import type { Lifeline, LifelineHandlers } from '../lifeline/event-sink';
import { type MemFile, openMemFile } from '../memory/mem-file';
import { holdLifeline } from './lifeline';
import { RestClient } from './rest-client';

const b64 = (data: Buffer): string => data.toString('base64');
const unb64 = (r: { data: string }): Buffer => Buffer.from(r.data, 'base64');

/** Typed client of the host kernel for one process (its token) — what a VMM or a test holds. */
export class HostKernelClient {
  constructor(readonly rest: RestClient) {}

  /** A client acting as the process that owns `token`. */
  as(token: string): HostKernelClient {
    return new HostKernelClient(this.rest.withToken(token));
  }

  async health(): Promise<void> {
    await this.rest.get('/health');
  }
  createProcess(comm: string): Promise<ProcessCreated> {
    return this.rest.post('/v1/processes', { comm });
  }
  killProcess(pid: number): Promise<void> {
    return this.rest.delete(`/v1/processes/${pid}`);
  }
  lifelineUrl(pid: number): string {
    return this.rest.url(`/v1/processes/${pid}/lifeline`);
  }
  holdLifeline(pid: number, opts: LifelineHandlers & { auditUrl?: string | null }): Lifeline {
    return holdLifeline(this.lifelineUrl(pid), { app: this.rest.opts.app, token: this.rest.opts.token ?? '', peerKey: this.rest.opts.peerKey, ...opts });
  }
  async mmap(pid: number, length: number): Promise<number> {
    return (await this.rest.post<{ hva: number }>(`/v1/processes/${pid}/mmap`, { length })).hva;
  }
  /** A shared mapping: the answer names its memory file, which this process then maps (POSIX shared memory). */
  async mmapShared(pid: number, length: number): Promise<{ hva: number; file: MemFile }> {
    const r = await this.rest.post<{ hva: number; file: string }>(`/v1/processes/${pid}/mmap`, { length, shared: true });
    return { hva: r.hva, file: openMemFile(r.file) };
  }
  writeMemory(pid: number, hva: number, data: Buffer): Promise<void> {
    return this.rest.put(`/v1/processes/${pid}/memory`, { hva, data: b64(data) });
  }
  async readMemory(pid: number, hva: number, length: number): Promise<Buffer> {
    return unb64(await this.rest.get(`/v1/processes/${pid}/memory`, { hva, length }));
  }
  wrmsr(pid: number, value: number): Promise<void> {
    return this.rest.post(`/v1/processes/${pid}/wrmsr`, { msr: 'IA32_PASID', value });
  }
  enqcmd(pid: number, deviceFd: number, descriptor: Descriptor): Promise<EnqcmdResult> {
    return this.rest.post(`/v1/processes/${pid}/enqcmd`, { deviceFd, descriptor });
  }
  closeFd(fd: number): Promise<void> {
    return this.rest.delete(`/v1/fds/${fd}`);
  }

  async openIoasid(): Promise<number> {
    return (await this.rest.post<{ fd: number }>('/v1/ioasid', {})).fd;
  }
  async alloc(fd: number): Promise<number> {
    return (await this.rest.post<{ ioasid: number }>(`/v1/ioasid/${fd}/ioasids`, {})).ioasid;
  }
  list(fd: number): Promise<Array<{ ioasid: number; state: IoasidState }>> {
    return this.rest.get(`/v1/ioasid/${fd}/ioasids`);
  }
  info(fd: number, ioasid: number): Promise<IoasidInfo> {
    return this.rest.get(`/v1/ioasid/${fd}/ioasids/${ioasid}`);
  }
  bindPgtbl(fd: number, ioasid: number, spec: PgtblSpec): Promise<void> {
    return this.rest.post(`/v1/ioasid/${fd}/ioasids/${ioasid}/pgtbl`, spec);
  }
  async map(
    fd: number,
    ioasid: number,
    a: { iova: number; hva: number; length: number; read: boolean; write: boolean },
  ): Promise<number> {
    return (await this.rest.post<{ iova: number }>(`/v1/ioasid/${fd}/ioasids/${ioasid}/map`, a)).iova;
  }
  async unmap(fd: number, ioasid: number, a: { iova: number; length: number } | { all: true }): Promise<number> {
    return (await this.rest.post<{ unmapped: number }>(`/v1/ioasid/${fd}/ioasids/${ioasid}/unmap`, a)).unmapped;
  }
  invalidate(fd: number, ioasid: number, range?: { iova: number; length: number }): Promise<void> {
    return this.rest.post(`/v1/ioasid/${fd}/ioasids/${ioasid}/invalidate`, range ?? {});
  }
  destroy(fd: number, ioasid: number): Promise<void> {
    return this.rest.delete(`/v1/ioasid/${fd}/ioasids/${ioasid}`);
  }

  async createFaultQueue(fd: number): Promise<number> {
    return (await this.rest.post<{ faultQueue: number }>(`/v1/ioasid/${fd}/fault-queues`, {})).faultQueue;
  }
  destroyFaultQueue(fd: number, faultQueue: number): Promise<void> {
    return this.rest.delete(`/v1/ioasid/${fd}/fault-queues/${faultQueue}`);
  }
  readFaultGroups(fd: number, faultQueue: number): Promise<FaultGroup[]> {
    return this.rest.get(`/v1/ioasid/${fd}/fault-queues/${faultQueue}/groups`);
  }
  respondFault(fd: number, faultQueue: number, cookie: number, code: FaultResponseCode): Promise<void> {
    return this.rest.post(`/v1/ioasid/${fd}/fault-queues/${faultQueue}/response`, { cookie, code });
  }

  listDevices(): Promise<DeviceInfo[]> {
    return this.rest.get('/v1/vfio/devices');
  }
  async openDevice(bdf: string): Promise<number> {
    return (await this.rest.post<{ fd: number }>(`/v1/vfio/devices/${bdf}/open`, {})).fd;
  }
  allowIoasid(deviceFd: number, a: { ioasidFd: number; ioasid: number; mode: AllowMode }): Promise<void> {
    return this.rest.post(`/v1/vfio/${deviceFd}/allow-ioasid`, a);
  }
  disallowIoasid(deviceFd: number, a: { ioasidFd: number; ioasid: number }): Promise<void> {
    return this.rest.post(`/v1/vfio/${deviceFd}/disallow-ioasid`, a);
  }

  async createVm(): Promise<number> {
    return (await this.rest.post<{ fd: number }>('/v1/kvm/vms', {})).fd;
  }
  addMemslot(vmFd: number, a: { gpa: number; size: number; hva: number }): Promise<void> {
    return this.rest.post(`/v1/kvm/${vmFd}/memslots`, a);
  }
  async createVcpu(vmFd: number): Promise<number> {
    return (await this.rest.post<{ vcpu: number }>(`/v1/kvm/${vmFd}/vcpus`, {})).vcpu;
  }
  writeGuestMemory(vmFd: number, gpa: number, data: Buffer): Promise<void> {
    return this.rest.put(`/v1/kvm/${vmFd}/memory`, { gpa, data: b64(data) });
  }
  async readGuestMemory(vmFd: number, gpa: number, length: number): Promise<Buffer> {
    return unb64(await this.rest.get(`/v1/kvm/${vmFd}/memory`, { gpa, length }));
  }
  setPasidTranslation(vmFd: number, enabled: boolean): Promise<void> {
    return this.rest.post(`/v1/kvm/${vmFd}/pasid-translation`, { enabled });
  }
  mapPasid(vmFd: number, a: { vpasid: number; ioasidFd: number; ioasid: number }): Promise<void> {
    return this.rest.post(`/v1/kvm/${vmFd}/map-pasid`, a);
  }
  unmapPasid(vmFd: number, vpasid: number): Promise<void> {
    return this.rest.post(`/v1/kvm/${vmFd}/unmap-pasid`, { vpasid });
  }
  vcpuWrmsr(vmFd: number, vcpu: number, value: number): Promise<void> {
    return this.rest.post(`/v1/kvm/${vmFd}/vcpus/${vcpu}/wrmsr`, { msr: 'IA32_PASID', value });
  }
  vcpuEnqcmd(vmFd: number, vcpu: number, deviceFd: number, descriptor: Descriptor): Promise<EnqcmdResult> {
    return this.rest.post(`/v1/kvm/${vmFd}/vcpus/${vcpu}/enqcmd`, { deviceFd, descriptor });
  }

  vcpuEnqcmds(vmFd: number, vcpu: number, deviceFd: number, descriptor: Descriptor, pasid: number, privileged: boolean): Promise<EnqcmdResult> {
    return this.rest.post(`/v1/kvm/${vmFd}/vcpus/${vcpu}/enqcmds`, { deviceFd, descriptor, pasid, privileged });
  }

  // admin
  pasidPool(): Promise<PasidPool> {
    return this.rest.get('/v1/hw/pasids');
  }
  pasidInfo(pasid: number): Promise<{ pasid: number; state: 'free' | 'allocated' | 'parked'; owner?: unknown; holders?: unknown }> {
    return this.rest.get('/v1/hw/pasids', { pasid });
  }
  faults(): Promise<FaultRecord[]> {
    return this.rest.get('/v1/hw/iommu/faults');
  }
  pageRequests(): Promise<PageRequestQueueView> {
    return this.rest.get('/v1/hw/iommu/page-requests');
  }
}
