// Test support for the kernel domain specs (not used by production code): a kernel whose calls are the rows of
// the command tables, each issued as its own transaction (dispatch/invoke.ts `call`, no journal), under the
// method names of the syscalls they model. Every method is one row; nothing here decides anything.
import type { Descriptor, EnqcmdResult, FaultRecord } from '@app/shared/contract/host-kernel';
import { errnoOf } from '@app/shared/errno.testing';
import type { Journal } from '@app/shared/journal/journal';
import type { RawDma, RawDmaResult } from './devices/device-set';
import { checkMsr } from './cpu/msr';
import { Dispatcher } from './dispatch/dispatcher';
import { call } from './dispatch/invoke';
import type { HostCaller, Op, OpFile } from './dispatch/op';
import type { FaultInjector, TxEvent } from './fault-injection';
import type { InvalidateRequest, PasidInfo } from './ioasid/ioasid-layer';
import type { IoasidInfo } from './ioasid/ioasid-context';
import type { IoasidState } from './ioasid/ioasid';
import type { MapArgs } from './ioasid/io-pagetable';
import type { BindSpec, PageTableHandle } from './ioasid/pgtbl';
import { DeviceConfig, Kernel, KernelOptions } from './kernel';
import { kernelState, type KernelState } from './kernel-state';
import type { Memslot } from './kvm/memslots';
// Each kind's rows from its own module: ops.ts re-exports them, and a CommonJS re-export is a getter per use.
import { cpuOps } from './cpu/cpu.ops';
import { faultOps } from './fault/fault.ops';
import { hwOps } from './hw/hw.ops';
import { ioasidOps } from './ioasid/ioasid.ops';
import { kvmOps } from './kvm/kvm.ops';
import { processOps } from './process/process.ops';
import { vfioOps } from './vfio/vfio.ops';
import type { FaultGroupView } from './fault/fault-queue';
import type { PageResponseCode } from './ioasid/pgtbl';
import type { ProcessInfo } from './process/process.ops';
import type { AllowMode, DrainHook } from './vfio/vfio-device-file';
import { VfioDeviceFile } from './vfio/vfio-device-file';
import { KvmVm } from './kvm/kvm-vm';

export { errnoOf };

export const DSA0 = '0000:6a:01.0';
export const DSA1 = '0000:6b:01.0';
/** A device without a PASID capability. */
export const NOPASID = '0000:6c:01.0';

export const TEST_DEVICES: DeviceConfig[] = [
  { bdf: DSA0, vendorId: 0x8086, deviceId: 0x0b25, pasidWidth: 20, wqDepth: 32 },
  { bdf: DSA1, vendorId: 0x8086, deviceId: 0x0b25, pasidWidth: 20, wqDepth: 32 },
  { bdf: NOPASID, vendorId: 0x8086, deviceId: 0x1234, pasidWidth: 0, wqDepth: 8 },
];

export const PAGE = 4096;

export type KernelSnapshot = KernelState;

/** The caller of process pid: one frozen object per pid, not one per call. */
const callers = new Map<number, HostCaller>();
const proc = (pid: number): HostCaller => {
  let caller = callers.get(pid);
  if (caller === undefined) callers.set(pid, (caller = Object.freeze({ kind: 'process', pid })));
  return caller;
};
const ADMIN: HostCaller = { kind: 'admin' };

/** The kernel under test, called the way a process calls it: `k.alloc(pid, fd)` is the ALLOC row for pid. */
export interface TestKernelOptions extends KernelOptions {
  /** Journal every call through the real dispatcher (its row written before the call commits). */
  journal?: Journal;
}

export class TestKernel {
  readonly kernel: Kernel;
  readonly dispatcher: Dispatcher<Kernel> | null = null;
  /** Replaceable observers of the data plane (see KernelOptions). */
  drain: DrainHook | null = null;
  onInvalidate: ((req: InvalidateRequest) => void) | null = null;

  constructor(opts: TestKernelOptions) {
    this.kernel = new Kernel({
      ...opts,
      drain: (bdf, ppasid) => {
        opts.drain?.(bdf, ppasid);
        this.drain?.(bdf, ppasid);
      },
      onInvalidate: (req) => {
        opts.onInvalidate?.(req);
        this.onInvalidate?.(req);
      },
    });
    if (opts.journal) {
      const observer = opts.onEvent;
      const dispatcher = new Dispatcher(this.kernel, opts.journal, { deliver: (events) => events.forEach((e) => observer?.(e)) });
      this.kernel.onEvent = (e) => dispatcher.onKernelEvent(e);
      this.dispatcher = dispatcher;
    }
  }

  get memory(): Kernel['memory'] {
    return this.kernel.memory;
  }
  get iommu(): Kernel['iommu'] {
    return this.kernel.iommu;
  }
  get accelerators(): Kernel['accelerators'] {
    return this.kernel.accelerators;
  }
  get faultInjector(): FaultInjector | undefined {
    return this.kernel.faults;
  }

  /** One row for `caller`: through the journaling dispatcher when there is a journal, else as a bare transaction. */
  call<A, R, F extends OpFile>(op: Op<never, A, R, F, never>, caller: HostCaller, args: A): R {
    if (this.dispatcher) return this.dispatcher.execSync(op, caller, args);
    return call(this.kernel, op, caller, args, this.forward);
  }

  /** Where a bare transaction's events go (one closure, not one per call). */
  private readonly forward = (e: TxEvent): void => this.kernel.onEvent(e);

  // ---- processes, memory, fds ----
  createProcess(comm: string): { pid: number; token: string } {
    const { pid, token } = this.call(processOps.create, { kind: 'anyone' }, { comm });
    return { pid, token };
  }
  pidForToken(token: string): number | undefined {
    return this.kernel.procs.pidForToken(token);
  }
  process(pid: number): ProcessInfo {
    return this.call(processOps.get, ADMIN, { pid });
  }
  killProcess(pid: number, reason: string): void {
    this.call(processOps.exit, { kind: 'kernel' }, { pid, reason });
  }
  closeFd(pid: number, fd: number): void {
    this.call(processOps.close, proc(pid), { fd });
  }
  mmap(pid: number, length: number): number {
    return this.call(processOps.mmap, proc(pid), { pid, length }).hva;
  }
  writeMemory(pid: number, hva: number, data: Buffer): void {
    this.call(processOps.write, proc(pid), { pid, hva, data });
  }
  readMemory(pid: number, hva: number, length: number): Buffer {
    return this.call(processOps.read, proc(pid), { pid, hva, length });
  }
  wrmsr(pid: number, msr: string, value: number): void {
    this.call(cpuOps.wrmsr, proc(pid), { pid, msr, value });
  }
  /** RDMSR: the only MSR modelled is IA32_PASID (EINVAL otherwise). */
  rdmsr(pid: number, msr: string): number {
    const p = this.kernel.procs.running(pid);
    checkMsr(msr);
    return p.ia32Pasid;
  }
  enqcmd(pid: number, deviceFd: number, descriptor: Descriptor): EnqcmdResult {
    return this.call(cpuOps.enqcmd, proc(pid), { pid, deviceFd, descriptor });
  }
  enqcmds(pid: number, deviceFd: number, descriptor: Descriptor): EnqcmdResult {
    return this.call(cpuOps.enqcmds, proc(pid), { pid, deviceFd, descriptor });
  }

  // ---- /dev/ioasid ----
  openIoasid(pid: number): number {
    return this.call(ioasidOps.open, proc(pid), {}).fd;
  }
  alloc(pid: number, fd: number): number {
    return this.call(ioasidOps.alloc, proc(pid), { fd }).ioasid;
  }
  list(pid: number, fd: number): { ioasid: number; state: IoasidState }[] {
    return this.call(ioasidOps.list, proc(pid), { fd });
  }
  info(pid: number, fd: number, ioasid: number): IoasidInfo {
    return this.call(ioasidOps.info, proc(pid), { fd, ioasid });
  }
  bindPgtbl(pid: number, fd: number, ioasid: number, spec: BindSpec): void {
    this.call(ioasidOps.bindPgtbl, proc(pid), { fd, ioasid, ...spec });
  }
  map(pid: number, fd: number, ioasid: number, a: MapArgs): number {
    return this.call(ioasidOps.map, proc(pid), { fd, ioasid, ...a }).iova;
  }
  unmap(pid: number, fd: number, ioasid: number, a: { iova: number; length: number } | { all: true }): number {
    return this.call(ioasidOps.unmap, proc(pid), { fd, ioasid, ...a }).unmapped;
  }
  invalidate(pid: number, fd: number, ioasid: number, range?: { iova: number; length: number }): void {
    this.call(ioasidOps.invalidate, proc(pid), { fd, ioasid, ...range });
  }
  destroy(pid: number, fd: number, ioasid: number): void {
    this.call(ioasidOps.destroy, proc(pid), { fd, ioasid });
  }
  createFaultQueue(pid: number, fd: number): number {
    return this.call(faultOps.alloc, proc(pid), { fd }).faultQueue;
  }
  destroyFaultQueue(pid: number, fd: number, faultQueue: number): void {
    this.call(faultOps.destroy, proc(pid), { fd, faultQueue });
  }
  readFaultGroups(pid: number, fd: number, faultQueue: number): FaultGroupView[] {
    return this.call(faultOps.read, proc(pid), { fd, faultQueue });
  }
  respondFault(pid: number, fd: number, faultQueue: number, cookie: number, code: PageResponseCode): void {
    this.call(faultOps.respond, proc(pid), { fd, faultQueue, cookie, code });
  }
  pageRequests(): ReturnType<Kernel['iommu']['prq']['stats']> & { groups: ReturnType<Kernel['iommu']['prq']['pendingGroups']> } {
    return this.call(hwOps.pageRequests, ADMIN, {});
  }
  pasidPool(): { allocated: number; parked: number; free: number } {
    return this.call(hwOps.pasids, ADMIN, {}) as { allocated: number; parked: number; free: number };
  }
  pasidInfo(ppasid: number): PasidInfo {
    return this.call(hwOps.pasids, ADMIN, { pasid: ppasid }) as PasidInfo;
  }

  // ---- VFIO ----
  listDevices(): DeviceConfig[] {
    return this.call(vfioOps.listDevices, ADMIN, {});
  }
  openDevice(pid: number, bdf: string): number {
    return this.call(vfioOps.open, proc(pid), { bdf }).fd;
  }
  allowIoasid(pid: number, deviceFd: number, a: { ioasidFd: number; ioasid: number; mode: AllowMode }): void {
    this.call(vfioOps.allowIoasid, proc(pid), { deviceFd, ...a });
  }
  disallowIoasid(pid: number, deviceFd: number, a: { ioasidFd: number; ioasid: number }): { changed: boolean } {
    return this.call(vfioOps.disallowIoasid, proc(pid), { deviceFd, ...a });
  }
  /** The bdf behind a device fd of the caller. */
  deviceBdf(pid: number, deviceFd: number): string {
    return this.kernel.procs.running(pid).fds.get(deviceFd, 'device', VfioDeviceFile).bdf;
  }
  /** The page table a request (bdf, ppasid | null) is translated with, or null. */
  route(bdf: string, ppasid: number | null): PageTableHandle | null {
    return this.kernel.iommu.table.lookup(bdf, ppasid);
  }

  // ---- KVM ----
  createVm(pid: number): number {
    return this.call(kvmOps.createVm, proc(pid), {}).fd;
  }
  addMemslot(pid: number, vmFd: number, slot: Memslot): void {
    this.call(kvmOps.setMemslot, proc(pid), { vmFd, ...slot });
  }
  createVcpu(pid: number, vmFd: number): number {
    return this.call(kvmOps.createVcpu, proc(pid), { vmFd }).vcpu;
  }
  writeGuestMemory(pid: number, vmFd: number, gpa: number, data: Buffer): void {
    this.call(kvmOps.writeGuest, proc(pid), { vmFd, gpa, data });
  }
  readGuestMemory(pid: number, vmFd: number, gpa: number, length: number): Buffer {
    return this.call(kvmOps.readGuest, proc(pid), { vmFd, gpa, length });
  }
  setPasidTranslation(pid: number, vmFd: number, enabled: boolean): void {
    this.call(kvmOps.pasidTranslation, proc(pid), { vmFd, enabled });
  }
  mapPasid(pid: number, vmFd: number, a: { vpasid: number; ioasidFd: number; ioasid: number }): void {
    this.call(kvmOps.mapPasid, proc(pid), { vmFd, ...a });
  }
  unmapPasid(pid: number, vmFd: number, vpasid: number): number {
    return this.call(kvmOps.unmapPasid, proc(pid), { vmFd, vpasid }).ioasid;
  }
  /** vPASID → pPASID as ENQCMD sees it (null on a miss, with translation off, or once the ioasid is destroyed). */
  translateVpasid(pid: number, vmFd: number, vpasid: number): number | null {
    return this.kernel.procs.running(pid).fds.get(vmFd, 'kvm-vm', KvmVm).translate(vpasid);
  }
  vcpuWrmsr(pid: number, vmFd: number, vcpu: number, msr: string, value: number): void {
    this.call(kvmOps.vcpuWrmsr, proc(pid), { vmFd, vcpu, msr, value });
  }
  vcpuRdmsr(pid: number, vmFd: number, vcpu: number, msr: string): number {
    return this.kernel.procs.running(pid).fds.get(vmFd, 'kvm-vm', KvmVm).vcpuRdmsr(vcpu, msr);
  }
  vcpuEnqcmd(pid: number, vmFd: number, vcpu: number, deviceFd: number, descriptor: Descriptor): EnqcmdResult {
    return this.call(kvmOps.vcpuEnqcmd, proc(pid), { vmFd, vcpu, deviceFd, descriptor });
  }
  vcpuEnqcmds(pid: number, vmFd: number, vcpu: number, deviceFd: number, descriptor: Descriptor, pasid: number, privileged: boolean): EnqcmdResult {
    return this.call(kvmOps.vcpuEnqcmds, proc(pid), { vmFd, vcpu, deviceFd, descriptor, pasid, privileged });
  }

  // ---- hardware ----
  faults(): FaultRecord[] {
    return this.call(hwOps.faults, ADMIN, {});
  }
  deviceDma(bdf: string, req: RawDma): RawDmaResult {
    return this.call(hwOps.dma, ADMIN, { bdf, ...req, pasid: req.pasid ?? undefined });
  }
  setEngine(bdf: string, running: boolean): void {
    this.call(hwOps.engine, ADMIN, { bdf, running });
  }

  /** Everything that must be unchanged by a failed call: processes, fds, ioasids, pins, routes, KVM tables. */
  snapshot(): KernelSnapshot {
    return kernelState(this.kernel);
  }
}

export function newKernel(opts: Partial<TestKernelOptions> = {}): TestKernel {
  return new TestKernel({ memoryMiB: 16, devices: TEST_DEVICES, ...opts });
}

/** fn fails with errno and leaves the whole kernel state exactly as it was. */
export function expectFails(k: TestKernel, fn: () => unknown, errno: string): void {
  const before = k.snapshot();
  expect(errnoOf(fn)).toBe(errno);
  expect(k.snapshot()).toEqual(before);
}

/** A process with an ioasid fd, an mmapped buffer and one bound iova ioasid mapping it at iova 0. */
export function vmmWithGpaSpace(k: TestKernel, pages = 4): { pid: number; fd: number; gpa: number; hva: number } {
  const { pid } = k.createProcess('vmm');
  const fd = k.openIoasid(pid);
  const hva = k.mmap(pid, pages * PAGE);
  const gpa = k.alloc(pid, fd);
  k.bindPgtbl(pid, fd, gpa, { kind: 'iova' });
  k.map(pid, fd, gpa, { iova: 0, hva, length: pages * PAGE, read: true, write: true });
  return { pid, fd, gpa, hva };
}
