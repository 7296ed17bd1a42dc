// What the VMM needs from the host kernel (DESIGN §5, host-kernel table). Every method mirrors one REST
// call; a failure rejects with the KernelError the host raised (errno preserved). The signatures match
// libs/shared/src/http/host-kernel.client.ts, so a HostKernelClient satisfies this port as is.
import type {
  AllowMode,
  Descriptor,
  DeviceInfo,
  EnqcmdResult,
  FaultGroup,
  FaultResponseCode,
  PgtblSpec,
  ProcessCreated,
} from '@app/shared/contract/host-kernel';
import type { Lifeline, LifelineHandlers } from '@app/shared/lifeline/event-sink';
import type { MemFile } from '@app/shared/memory/mem-file';

export interface HostKernelPort {
  /** GET /health — resolves when the host kernel answers (a VMM that lost it waits for this to reconnect). */
  health(): Promise<void>;
  /** POST /v1/processes — registers a new host process; `as(token)` then acts as it. */
  createProcess(comm: string): Promise<ProcessCreated>;
  /** The same port acting as the process owning `token` (one bound port per VM). */
  as(token: string): HostKernelPort;
  /** DELETE /v1/processes/:pid — process death closes every fd it still holds. */
  killProcess(pid: number): Promise<void>;
  /**
   * GET /v1/processes/:pid/lifeline — holds the process's lifeline (its drop is the process's death); host
   * events for the process (faults, page requests) reach `onEvent`. `auditUrl` is where our journal is read.
   */
  holdLifeline(pid: number, opts: LifelineHandlers & { auditUrl?: string | null }): Lifeline;
  mmap(pid: number, length: number): Promise<number>;
  /**
   * POST /v1/processes/:pid/mmap {shared: true}: a mapping backed by a memory file (guest RAM), and the file mapped
   * in this process too, so the VMM reads and writes the bytes the host's KVM and DMA see, with no call per access.
   */
  mmapShared(pid: number, length: number): Promise<{ hva: number; file: MemFile }>;
  closeFd(fd: number): Promise<void>;

  openIoasid(): Promise<number>;
  alloc(fd: number): Promise<number>;
  bindPgtbl(fd: number, ioasid: number, spec: PgtblSpec): Promise<void>;
  map(fd: number, ioasid: number, a: { iova: number; hva: number; length: number; read: boolean; write: boolean }): Promise<number>;
  unmap(fd: number, ioasid: number, a: { iova: number; length: number } | { all: true }): Promise<number>;
  invalidate(fd: number, ioasid: number, range?: { iova: number; length: number }): Promise<void>;
  destroy(fd: number, ioasid: number): Promise<void>;
  /** Fault queues (DESIGN §10): where nested page tables bound with one send their page requests. */
  createFaultQueue(fd: number): Promise<number>;
  destroyFaultQueue(fd: number, faultQueue: number): Promise<void>;
  /** Every group not read yet, whole, each with its response cookie. */
  readFaultGroups(fd: number, faultQueue: number): Promise<FaultGroup[]>;
  respondFault(fd: number, faultQueue: number, cookie: number, code: FaultResponseCode): Promise<void>;

  listDevices(): Promise<DeviceInfo[]>;
  openDevice(bdf: string): Promise<number>;
  allowIoasid(deviceFd: number, a: { ioasidFd: number; ioasid: number; mode: AllowMode }): Promise<void>;
  disallowIoasid(deviceFd: number, a: { ioasidFd: number; ioasid: number }): Promise<void>;

  createVm(): Promise<number>;
  addMemslot(vmFd: number, a: { gpa: number; size: number; hva: number }): Promise<void>;
  createVcpu(vmFd: number): Promise<number>;
  readGuestMemory(vmFd: number, gpa: number, length: number): Promise<Buffer>;
  writeGuestMemory(vmFd: number, gpa: number, data: Buffer): Promise<void>;
  setPasidTranslation(vmFd: number, enabled: boolean): Promise<void>;
  mapPasid(vmFd: number, a: { vpasid: number; ioasidFd: number; ioasid: number }): Promise<void>;
  unmapPasid(vmFd: number, vpasid: number): Promise<void>;
  vcpuWrmsr(vmFd: number, vcpu: number, value: number): Promise<void>;
  vcpuEnqcmd(vmFd: number, vcpu: number, deviceFd: number, descriptor: Descriptor): Promise<EnqcmdResult>;
  vcpuEnqcmds(vmFd: number, vcpu: number, deviceFd: number, descriptor: Descriptor, pasid: number, privileged: boolean): Promise<EnqcmdResult>;
}
