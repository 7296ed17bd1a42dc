// The in-process adapter of HostKernelPort (DESIGN §8): every method is the row of the host's command table the
// REST route issues, with the same arguments, through the same bearer-token rule and the same dispatcher, so the
// journals, errnos and ordering are those of the three-process stack.
import type { AllowMode, Descriptor, DeviceInfo, EnqcmdResult, FaultGroup, FaultResponseCode, PageRequestQueueView, PgtblSpec, ProcessCreated } from '@app/shared/contract/host-kernel';
import type { Lifeline, LifelineHandlers } from '@app/shared/lifeline/event-sink';
import { type MemFile, openMemFile } from '@app/shared/memory/mem-file';
import type { Op, OpFile } from '../apps/host-kernel/src/dispatch/op';
import type { HostKernelApp } from '../apps/host-kernel/src/host-kernel.app';
import { cpuOps, faultOps, hwOps, ioasidOps, kvmOps, processOps, vfioOps } from '../apps/host-kernel/src/ops';
import type { HostKernelPort } from '../apps/vmm/src/host-kernel.port';
import { copy, cross, lifeline, type Side } from './crossing';

export class InProcessHostKernel implements HostKernelPort {
  constructor(
    readonly host: HostKernelApp,
    private readonly from: Side,
    private readonly token: string | null = null,
  ) {}

  private get side(): Side {
    return { app: 'host-kernel', clock: this.host.journal.clock };
  }

  /** One call: the guard's rule for the op (its `:pid` if the route has one), then the dispatcher. */
  private call<A, R, F extends OpFile>(op: Op<never, A, R, F, never>, args: A, pid?: number): Promise<R> {
    return cross(this.from, this.side, () => this.host.dispatcher.exec(op, this.host.authorize(op, this.token, pid), copy(args)));
  }

  as(token: string): InProcessHostKernel {
    return new InProcessHostKernel(this.host, this.from, token);
  }

  /** The host is in this process: it answers whenever the caller does. */
  health(): Promise<void> {
    return cross(this.from, this.side, () => undefined);
  }
  async createProcess(comm: string): Promise<ProcessCreated> {
    const r = await this.call(processOps.create, { comm });
    return { pid: r.pid, token: r.token };
  }
  killProcess(pid: number): Promise<void> {
    return this.call(processOps.exit, { pid }, pid);
  }
  holdLifeline(pid: number, opts: LifelineHandlers & { auditUrl?: string | null }): Lifeline {
    return lifeline(opts, (sink) => cross(this.from, this.side, () => this.host.attachLifeline(this.host.authorize({ permit: 'process' }, this.token, pid), pid, sink)), (sink) => void this.host.lifelineDropped(pid, sink));
  }
  async mmap(pid: number, length: number): Promise<number> {
    return (await this.call(processOps.mmap, { pid, length }, pid)).hva;
  }
  /** The answer crosses as REST's does (the file's name); the name then maps the file, as it does over REST. */
  async mmapShared(pid: number, length: number): Promise<{ hva: number; file: MemFile }> {
    const r = await this.call(processOps.mmap, { pid, length, shared: true }, pid);
    return { hva: r.hva, file: openMemFile(r.file as string) };
  }
  closeFd(fd: number): Promise<void> {
    return this.call(processOps.close, { fd });
  }

  async openIoasid(): Promise<number> {
    return (await this.call(ioasidOps.open, {})).fd;
  }
  async alloc(fd: number): Promise<number> {
    return (await this.call(ioasidOps.alloc, { fd })).ioasid;
  }
  bindPgtbl(fd: number, ioasid: number, spec: PgtblSpec): Promise<void> {
    return this.call(ioasidOps.bindPgtbl, { fd, ioasid, ...spec });
  }
  async map(fd: number, ioasid: number, a: { iova: number; hva: number; length: number; read: boolean; write: boolean }): Promise<number> {
    return (await this.call(ioasidOps.map, { fd, ioasid, ...a })).iova;
  }
  async unmap(fd: number, ioasid: number, a: { iova: number; length: number } | { all: true }): Promise<number> {
    return (await this.call(ioasidOps.unmap, { fd, ioasid, ...a })).unmapped;
  }
  invalidate(fd: number, ioasid: number, range?: { iova: number; length: number }): Promise<void> {
    return this.call(ioasidOps.invalidate, { fd, ioasid, ...range });
  }
  destroy(fd: number, ioasid: number): Promise<void> {
    return this.call(ioasidOps.destroy, { fd, ioasid });
  }

  async createFaultQueue(fd: number): Promise<number> {
    return (await this.call(faultOps.alloc, { fd })).faultQueue;
  }
  destroyFaultQueue(fd: number, faultQueue: number): Promise<void> {
    return this.call(faultOps.destroy, { fd, faultQueue });
  }
  readFaultGroups(fd: number, faultQueue: number): Promise<FaultGroup[]> {
    return this.call(faultOps.read, { fd, faultQueue });
  }
  respondFault(fd: number, faultQueue: number, cookie: number, code: FaultResponseCode): Promise<void> {
    return this.call(faultOps.respond, { fd, faultQueue, cookie, code });
  }

  listDevices(): Promise<DeviceInfo[]> {
    return this.call(vfioOps.listDevices, {});
  }
  async openDevice(bdf: string): Promise<number> {
    return (await this.call(vfioOps.open, { bdf })).fd;
  }
  allowIoasid(deviceFd: number, a: { ioasidFd: number; ioasid: number; mode: AllowMode }): Promise<void> {
    return this.call(vfioOps.allowIoasid, { deviceFd, ...a });
  }
  async disallowIoasid(deviceFd: number, a: { ioasidFd: number; ioasid: number }): Promise<void> {
    await this.call(vfioOps.disallowIoasid, { deviceFd, ...a });
  }

  async createVm(): Promise<number> {
    return (await this.call(kvmOps.createVm, {})).fd;
  }
  addMemslot(vmFd: number, a: { gpa: number; size: number; hva: number }): Promise<void> {
    return this.call(kvmOps.setMemslot, { vmFd, ...a });
  }
  async createVcpu(vmFd: number): Promise<number> {
    return (await this.call(kvmOps.createVcpu, { vmFd })).vcpu;
  }
  readGuestMemory(vmFd: number, gpa: number, length: number): Promise<Buffer> {
    return this.call(kvmOps.readGuest, { vmFd, gpa, length });
  }
  writeGuestMemory(vmFd: number, gpa: number, data: Buffer): Promise<void> {
    return this.call(kvmOps.writeGuest, { vmFd, gpa, data });
  }
  setPasidTranslation(vmFd: number, enabled: boolean): Promise<void> {
    return this.call(kvmOps.pasidTranslation, { vmFd, enabled });
  }
  mapPasid(vmFd: number, a: { vpasid: number; ioasidFd: number; ioasid: number }): Promise<void> {
    return this.call(kvmOps.mapPasid, { vmFd, ...a });
  }
  async unmapPasid(vmFd: number, vpasid: number): Promise<void> {
    await this.call(kvmOps.unmapPasid, { vmFd, vpasid });
  }
  vcpuWrmsr(vmFd: number, vcpu: number, value: number): Promise<void> {
    return this.call(kvmOps.vcpuWrmsr, { vmFd, vcpu, msr: 'IA32_PASID', value });
  }
  vcpuEnqcmd(vmFd: number, vcpu: number, deviceFd: number, descriptor: Descriptor): Promise<EnqcmdResult> {
    return this.call(kvmOps.vcpuEnqcmd, { vmFd, vcpu, deviceFd, descriptor });
  }
  vcpuEnqcmds(vmFd: number, vcpu: number, deviceFd: number, descriptor: Descriptor, pasid: number, privileged: boolean): Promise<EnqcmdResult> {
    return this.call(kvmOps.vcpuEnqcmds, { vmFd, vcpu, deviceFd, descriptor, pasid, privileged });
  }

  // ---- what a host process does besides the VMM's calls (host SVA, tests) ----
  writeMemory(pid: number, hva: number, data: Buffer): Promise<void> {
    return this.call(processOps.write, { pid, hva, data }, pid);
  }
  readMemory(pid: number, hva: number, length: number): Promise<Buffer> {
    return this.call(processOps.read, { pid, hva, length }, pid);
  }
  wrmsr(pid: number, value: number): Promise<void> {
    return this.call(cpuOps.wrmsr, { pid, msr: 'IA32_PASID', value }, pid);
  }
  enqcmd(pid: number, deviceFd: number, descriptor: Descriptor): Promise<EnqcmdResult> {
    return this.call(cpuOps.enqcmd, { pid, deviceFd, descriptor }, pid);
  }
  /** The admin view of the host page request queue (with the admin token). */
  pageRequests(): Promise<PageRequestQueueView> {
    return this.call(hwOps.pageRequests, {});
  }
}
