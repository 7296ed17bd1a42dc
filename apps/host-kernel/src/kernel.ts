import type { Descriptor, EnqcmdResult, FaultRecord } from '@app/shared/contract/host-kernel';
import { KernelError } from '@app/shared/errno';
import type { AcceleratorEvent } from './devices/accelerator';
import { DeviceSet, EngineOptions, RawDma, RawDmaResult } from './devices/device-set';
import { atomically, FaultInjector, Tx } from './fault-injection';
import { RouteInfo } from './iommu/attach-table';
import { Iommu } from './iommu/iommu';
import { MapArgs } from './ioasid/io-pagetable';
import { IoasidState } from './ioasid/ioasid';
import { IoasidContext, IoasidInfo, UnmapArgs } from './ioasid/ioasid-context';
import { InvalidateRequest, IoasidLayer, PasidInfo } from './ioasid/ioasid-layer';
import { PASID_BITS } from '@app/shared/vtd/vtd.constants';
import { BindSpec, PageTableHandle } from './ioasid/pgtbl';
import { EnqcmdPortal, guestEnqcmd, guestEnqcmds, hostEnqcmd, prepareEnqcmd } from './kvm/enqcmd';
import { KvmVm } from './kvm/kvm-vm';
import { Memslot } from './kvm/memslots';
import { checkIa32PasidWrite, checkMsr } from './kvm/msr';
import { PhysicalMemory } from './memory/physical-memory';
import { FdKind } from './process/fd-table';
import { Process } from './process/process';
import { ProcessTable } from './process/process-table';
import { AllowMode, DrainHook, VfioDeviceFile } from './vfio/vfio-device-file';
import { DeviceConfig, validateDeviceConfig, VfioDevice } from './vfio/vfio-device';

export type { DeviceConfig } from './vfio/vfio-device';
export type { BindSpec, PageTableHandle } from './ioasid/pgtbl';
export type { IoasidInfo, UnmapArgs } from './ioasid/ioasid-context';
export type { IoasidState } from './ioasid/ioasid';
export type { MapArgs } from './ioasid/io-pagetable';
export type { AllowMode, DrainHook } from './vfio/vfio-device-file';
export type { Memslot } from './kvm/memslots';
export type { InvalidateRequest, PasidInfo } from './ioasid/ioasid-layer';
export { FaultInjector } from './fault-injection';
export type { EngineOptions, RawDma, RawDmaResult } from './devices/device-set';

export type KernelEvent = { kind: 'process-exit'; pid: number; reason: string } | { kind: string; pid?: number; [k: string]: unknown };

export interface KernelOptions {
  memoryMiB: number;
  devices: DeviceConfig[];
  firstPid?: number;
  /** The IOMMU's PASID width (VT-d ECAP.PSS + 1), 1..20; default 20. */
  pasidBits?: number;
  faults?: FaultInjector;
  onEvent?: (e: KernelEvent) => void;
  /** Observer called after the data plane drained a route (disallow/destroy/close, before the route goes). */
  drain?: DrainHook;
  /** Observer of IOTLB flush requests (UNMAP, INVALIDATE, DESTROY), after the IOTLB was flushed. */
  onInvalidate?: (req: InvalidateRequest) => void;
  /** The accelerators' engines: start stalled, custom scheduler (tests). */
  engine?: EngineOptions;
}

/**
 * The host kernel: processes and fds, memory, /dev/ioasid, VFIO, KVM (control plane), and the hardware — the
 * IOMMU and the accelerators (data plane). Every method takes the calling pid first; every mutating control
 * call is one transaction (all-or-nothing).
 */
export class Kernel {
  readonly memory: PhysicalMemory;
  readonly iommu: Iommu;
  readonly accelerators: DeviceSet;
  /** VFIO's drain hook; wired to the accelerators (replaceable by tests). */
  drain: DrainHook;
  onInvalidate: (req: InvalidateRequest) => void;
  private readonly procs: ProcessTable;
  private readonly ioasids: IoasidLayer;
  private readonly devices = new Map<string, VfioDevice>();
  private readonly injector?: FaultInjector;
  private readonly onEvent: (e: KernelEvent) => void;
  private nextVmUid = 1;

  constructor(opts: KernelOptions) {
    this.memory = new PhysicalMemory(opts.memoryMiB);
    this.procs = new ProcessTable(this.memory, opts.firstPid ?? 100);
    this.injector = opts.faults;
    this.onEvent = opts.onEvent ?? (() => undefined);
    this.iommu = new Iommu({ memory: this.memory, onFault: (f, route) => this.onEvent({ kind: 'fault', ...this.ownerOf(f.bdf, route), ...f }) });
    this.drain = (bdf, ppasid) => {
      this.accelerators.drain(bdf, ppasid);
      opts.drain?.(bdf, ppasid);
    };
    this.onInvalidate = (req) => {
      this.iommu.invalidate(req);
      opts.onInvalidate?.(req);
    };
    const hooks = {
      onEvent: (e: KernelEvent) => this.onEvent(e),
      onInvalidate: (r: InvalidateRequest) => this.onInvalidate(r),
      drainPasid: (ppasid: number) => void this.accelerators.drainEverywhere(ppasid),
    };
    this.ioasids = new IoasidLayer(this.memory, hooks, 2 ** (opts.pasidBits ?? PASID_BITS));
    for (const config of opts.devices) {
      const device = new VfioDevice(validateDeviceConfig(config));
      if (this.devices.has(device.bdf)) throw new KernelError('EEXIST', `device ${device.bdf} is configured twice`);
      this.devices.set(device.bdf, device);
      this.iommu.addDevice(device.bdf);
    }
    const configs = [...this.devices.values()].map((d) => d.config);
    this.accelerators = new DeviceSet(configs, this.iommu, opts.engine ?? {}, (bdf, e) => this.deviceEvent(bdf, e));
  }

  // ---- processes and fds ----

  createProcess(comm: string): { pid: number; token: string } {
    const proc = this.run((tx) => this.procs.create(tx, comm));
    return { pid: proc.pid, token: proc.token };
  }

  pidForToken(token: string): number | undefined {
    return this.procs.pidForToken(token);
  }

  process(pid: number): { pid: number; comm: string; state: Process['state']; fds: { fd: number; kind: FdKind }[] } {
    const p = this.procs.get(pid);
    return { pid: p.pid, comm: p.comm, state: p.state, fds: p.fds.list() };
  }

  /** The pids of every process still running (a shutdown kills them all). */
  runningPids(): number[] {
    return this.procs.all().filter((p) => p.state === 'running').map((p) => p.pid);
  }

  /** Process death: close every fd leaf-first (KVM → devices → ioasids), then free its memory. Idempotent. */
  killProcess(pid: number, reason: string): void {
    const proc = this.procs.get(pid);
    if (proc.state === 'exited') return;
    this.run((tx) => {
      for (const fd of proc.fds.closeOrder()) proc.fds.close(tx, fd);
      tx.do('process.exit', () => (proc.state = 'exited'), () => (proc.state = 'running'));
      tx.defer(() => {
        proc.mm.teardown();
        this.onEvent({ kind: 'process-exit', pid, reason });
      });
    });
  }

  closeFd(pid: number, fd: number): void {
    const proc = this.caller(pid);
    this.run((tx) => proc.fds.close(tx, fd));
  }

  // ---- memory ----

  mmap(pid: number, length: number): number {
    const proc = this.caller(pid);
    return this.run((tx) => proc.mm.mmap(tx, length));
  }

  writeMemory(pid: number, hva: number, data: Buffer): void {
    const proc = this.caller(pid);
    this.run((tx) => proc.mm.write(tx, hva, data));
  }

  readMemory(pid: number, hva: number, length: number): Buffer {
    return this.caller(pid).mm.read(hva, length);
  }

  wrmsr(pid: number, msr: string, value: number): void {
    const proc = this.caller(pid);
    const checked = checkIa32PasidWrite(msr, value);
    const was = proc.ia32Pasid;
    this.run((tx) => tx.do('process.wrmsr', () => (proc.ia32Pasid = checked), () => (proc.ia32Pasid = was)));
  }

  rdmsr(pid: number, msr: string): number {
    const proc = this.caller(pid);
    checkMsr(msr);
    return proc.ia32Pasid;
  }

  // ---- /dev/ioasid ----

  openIoasid(pid: number): number {
    const proc = this.caller(pid);
    return this.run((tx) => this.ioasids.open(tx, proc.fds, pid, proc.mm));
  }

  alloc(pid: number, fd: number): number {
    const ctx = this.ctx(pid, fd);
    return this.run((tx) => ctx.alloc(tx));
  }

  list(pid: number, fd: number): { ioasid: number; state: IoasidState }[] {
    return this.ctx(pid, fd).list();
  }

  info(pid: number, fd: number, ioasid: number): IoasidInfo {
    return this.ctx(pid, fd).info(ioasid);
  }

  bindPgtbl(pid: number, fd: number, ioasid: number, spec: BindSpec): void {
    const ctx = this.ctx(pid, fd);
    this.run((tx) => ctx.bind(tx, ioasid, spec));
  }

  map(pid: number, fd: number, ioasid: number, a: MapArgs): number {
    const ctx = this.ctx(pid, fd);
    return this.run((tx) => ctx.map(tx, ioasid, a));
  }

  unmap(pid: number, fd: number, ioasid: number, a: UnmapArgs): number {
    const ctx = this.ctx(pid, fd);
    return this.run((tx) => ctx.unmap(tx, ioasid, a));
  }

  invalidate(pid: number, fd: number, ioasid: number, range?: { iova: number; length: number }): void {
    this.ctx(pid, fd).invalidate(ioasid, range);
  }

  destroy(pid: number, fd: number, ioasid: number): void {
    const ctx = this.ctx(pid, fd);
    this.run((tx) => ctx.destroy(tx, ioasid));
  }

  pasidPool(): { allocated: number; parked: number; free: number } {
    return this.ioasids.pasidPool();
  }

  pasidInfo(ppasid: number): PasidInfo {
    return this.ioasids.pasidInfo(ppasid);
  }

  // ---- VFIO ----

  listDevices(): DeviceConfig[] {
    return [...this.devices.values()].map((d) => ({ ...d.config }));
  }

  openDevice(pid: number, bdf: string): number {
    const proc = this.caller(pid);
    const device = this.devices.get(bdf);
    if (!device) throw new KernelError('ENODEV', `no device ${bdf}`);
    if (device.openedBy) throw new KernelError('EBUSY', `device ${bdf} is already open (pid ${device.openedBy.pid} fd ${device.openedBy.fd})`);
    return this.run((tx) => {
      const reset = (t: Tx, b: string): void => this.accelerators.reset(t, b);
      const { fd, file } = proc.fds.install(tx, (n) => new VfioDeviceFile(device, n, this.iommu.table, (b, p) => this.drain(b, p), reset));
      tx.do('vfio.open', () => (device.openedBy = { pid, fd }), () => (device.openedBy = null));
      file.open(tx);
      return fd;
    });
  }

  allowIoasid(pid: number, deviceFd: number, a: { ioasidFd: number; ioasid: number; mode: AllowMode }): void {
    const proc = this.caller(pid);
    const dev = proc.fds.get(deviceFd, 'device', VfioDeviceFile);
    const ref = this.ioasids.fdget(proc.fds, a.ioasidFd, a.ioasid);
    this.run((tx) => dev.allow(tx, ref, a.mode));
  }

  /** No route of this device to that ioasid (or the ioasid is gone) → {changed: false}, nothing done. */
  disallowIoasid(pid: number, deviceFd: number, a: { ioasidFd: number; ioasid: number }): { changed: boolean } {
    const proc = this.caller(pid);
    const dev = proc.fds.get(deviceFd, 'device', VfioDeviceFile);
    const ref = this.ioasids.fdgetOrNull(proc.fds, a.ioasidFd, a.ioasid, { parked: true });
    if (!ref) return { changed: false };
    return { changed: this.run((tx) => dev.disallow(tx, ref)) };
  }

  /** For the data plane: the bdf behind a device fd of the caller. */
  deviceBdf(pid: number, deviceFd: number): string {
    return this.caller(pid).fds.get(deviceFd, 'device', VfioDeviceFile).bdf;
  }

  deviceConfig(bdf: string): DeviceConfig {
    const device = this.devices.get(bdf);
    if (!device) throw new KernelError('ENODEV', `no device ${bdf}`);
    return { ...device.config };
  }

  /** For the data plane: the page table a request (bdf, ppasid | null) is translated with, or null. */
  route(bdf: string, ppasid: number | null): PageTableHandle | null {
    return this.iommu.table.lookup(bdf, ppasid);
  }

  // ---- KVM ----

  createVm(pid: number): number {
    const proc = this.caller(pid);
    return this.run((tx) => {
      const uid = tx.do('kvm.create-vm', () => this.nextVmUid++, () => this.nextVmUid--);
      return proc.fds.install(tx, (fd) => new KvmVm(uid, fd, proc.mm)).fd;
    });
  }

  addMemslot(pid: number, vmFd: number, slot: Memslot): void {
    const vm = this.vm(pid, vmFd);
    this.run((tx) => vm.addMemslot(tx, slot));
  }

  createVcpu(pid: number, vmFd: number): number {
    const vm = this.vm(pid, vmFd);
    return this.run((tx) => vm.createVcpu(tx));
  }

  writeGuestMemory(pid: number, vmFd: number, gpa: number, data: Buffer): void {
    const vm = this.vm(pid, vmFd);
    this.run((tx) => vm.writeGuest(tx, gpa, data));
  }

  readGuestMemory(pid: number, vmFd: number, gpa: number, length: number): Buffer {
    return this.vm(pid, vmFd).readGuest(gpa, length);
  }

  setPasidTranslation(pid: number, vmFd: number, enabled: boolean): void {
    const vm = this.vm(pid, vmFd);
    this.run((tx) => vm.setPasidTranslation(tx, enabled));
  }

  mapPasid(pid: number, vmFd: number, a: { vpasid: number; ioasidFd: number; ioasid: number }): void {
    const proc = this.caller(pid);
    const vm = proc.fds.get(vmFd, 'kvm-vm', KvmVm);
    vm.checkVpasid(a.vpasid);
    const ref = this.ioasids.fdget(proc.fds, a.ioasidFd, a.ioasid);
    this.run((tx) => vm.mapPasid(tx, a.vpasid, ref));
  }

  /** UNMAP_PASID; returns the pPASID whose reference it dropped (the journal names it, the caller gets 204). */
  unmapPasid(pid: number, vmFd: number, vpasid: number): number {
    const vm = this.vm(pid, vmFd);
    return this.run((tx) => vm.unmapPasid(tx, vpasid));
  }

  /** For ENQCMD: vPASID → pPASID, null on a miss, with translation off, or once the ioasid is destroyed. */
  translateVpasid(pid: number, vmFd: number, vpasid: number): number | null {
    return this.vm(pid, vmFd).translate(vpasid);
  }

  vcpuWrmsr(pid: number, vmFd: number, vcpu: number, msr: string, value: number): void {
    const vm = this.vm(pid, vmFd);
    this.run((tx) => vm.vcpuWrmsr(tx, vcpu, msr, value));
  }

  vcpuRdmsr(pid: number, vmFd: number, vcpu: number, msr: string): number {
    return this.vm(pid, vmFd).vcpuRdmsr(vcpu, msr);
  }

  // ---- data plane: ENQCMD, the IOMMU fault log, raw device access ----

  /** ENQCMD by a host process: PASID = its IA32_PASID, untranslated. */
  enqcmd(pid: number, deviceFd: number, descriptor: Descriptor): EnqcmdResult {
    const proc = this.caller(pid);
    const portal = this.portal(pid, deviceFd);
    return hostEnqcmd(proc.ia32Pasid, portal, prepareEnqcmd(portal, descriptor));
  }

  /** ENQCMD on a vCPU: vPASID → pPASID through the VM's PASID translation table. */
  vcpuEnqcmd(pid: number, vmFd: number, vcpu: number, deviceFd: number, descriptor: Descriptor): EnqcmdResult {
    const vm = this.vm(pid, vmFd);
    const ia32Pasid = vm.vcpuRdmsr(vcpu, 'IA32_PASID');
    const portal = this.portal(pid, deviceFd);
    const table = { enabled: vm.pasidTranslation, translate: (vpasid: number) => vm.translate(vpasid) };
    return guestEnqcmd(ia32Pasid, table, portal, prepareEnqcmd(portal, descriptor));
  }

  /** ENQCMDS by a host process: it runs at CPL 3, where ENQCMDS is #GP (supervisor-only). Nothing is submitted. */
  enqcmds(pid: number, deviceFd: number, descriptor: Descriptor): EnqcmdResult {
    this.caller(pid);
    prepareEnqcmd(this.portal(pid, deviceFd), descriptor);
    return { result: 'gp', reason: 'cpl3' };
  }

  /** ENQCMDS on a vCPU (guest kernel mode): the descriptor's PASID, translated through the VM's table. */
  vcpuEnqcmds(pid: number, vmFd: number, vcpu: number, deviceFd: number, descriptor: Descriptor, pasid: number, privileged: boolean): EnqcmdResult {
    const vm = this.vm(pid, vmFd);
    vm.vcpuRdmsr(vcpu, 'IA32_PASID'); // the vCPU must exist (ENOENT), as for ENQCMD
    const portal = this.portal(pid, deviceFd);
    const table = { enabled: vm.pasidTranslation, translate: (vpasid: number) => vm.translate(vpasid) };
    return guestEnqcmds(table, portal, prepareEnqcmd(portal, descriptor), pasid, privileged);
  }

  /** The IOMMU fault log, oldest first. */
  faults(): FaultRecord[] {
    return this.iommu.faults();
  }

  /** Admin: a raw access by device bdf through the IOMMU (ENODEV unknown device). */
  deviceDma(bdf: string, req: RawDma): RawDmaResult {
    return this.accelerators.dma(bdf, req);
  }

  /** Admin: stall (false) or resume (true) a device's engine. */
  setEngine(bdf: string, running: boolean): void {
    this.accelerators.setEngine(bdf, running);
  }

  // ---- audit / tests ----

  /** Everything that must be unchanged by a failed call: processes, fds, ioasids, pins, routes, KVM tables. */
  snapshot(): KernelSnapshot {
    const vms: KernelSnapshot['vms'] = [];
    const procs = this.procs.all().map((p) => {
      for (const { fd, kind } of p.fds.list()) {
        if (kind !== 'kvm-vm') continue;
        const vm = p.fds.get(fd, 'kvm-vm', KvmVm);
        vms.push({ pid: p.pid, fd, memslots: vm.memslots.list(), vcpus: vm.vcpuCount, translation: vm.pasidTranslation, pasids: vm.pasidMappings() });
      }
      return { pid: p.pid, state: p.state, fds: p.fds.list(), residentPages: p.mm.residentPages, ia32Pasid: p.ia32Pasid };
    });
    return {
      processes: procs,
      pool: this.pasidPool(),
      ioasids: this.ioasids.all().map((i) => ({ id: i.id, state: i.state, refs: i.refs, holders: i.describeHolders(), pgtbl: i.pgtbl && { kind: i.pgtbl.kind, id: i.pgtbl.id, destroyed: i.pgtbl.destroyed } })),
      pins: [...this.memory.pinnedFrames().entries()].sort(([a], [b]) => a - b),
      allocatedFrames: this.memory.allocatedFrames,
      routes: this.iommu.table.routes(),
      devices: [...this.devices.values()].map((d) => ({ bdf: d.bdf, openedBy: d.openedBy })),
      vms,
    };
  }

  private run<T>(fn: (tx: Tx) => T): T {
    return atomically(this.injector, fn);
  }

  private caller(pid: number): Process {
    return this.procs.running(pid);
  }

  private portal(pid: number, deviceFd: number): EnqcmdPortal {
    const bdf = this.deviceBdf(pid, deviceFd);
    const accelerator = this.accelerators.accelerator(bdf);
    return { bdf, pasidCapable: this.accelerators.pasidCapable(bdf), submit: (ppasid, d) => accelerator.submit(ppasid, d) };
  }

  /** Who hears about a device's event: the owner of the route's ioasid, else the process that has the device open. */
  private ownerOf(bdf: string, route: PageTableHandle | null): { pid?: number } {
    const pid = route ? this.ioasids.pasidInfo(route.ppasid).owner?.pid : this.devices.get(bdf)?.openedBy?.pid;
    return pid === undefined ? {} : { pid };
  }

  private deviceEvent(bdf: string, e: AcceleratorEvent): void {
    const { kind, ...rest } = e;
    // A drain's own events arrive while the route is blocked: find() still names its table.
    this.onEvent({ kind: `device-${kind}`, ...this.ownerOf(bdf, this.iommu.table.find(bdf, e.ppasid)?.pgtbl ?? null), bdf, ...rest });
  }

  private ctx(pid: number, fd: number): IoasidContext {
    return this.caller(pid).fds.get(fd, 'ioasid', IoasidContext);
  }

  private vm(pid: number, fd: number): KvmVm {
    return this.caller(pid).fds.get(fd, 'kvm-vm', KvmVm);
  }
}

export interface KernelSnapshot {
  processes: { pid: number; state: string; fds: { fd: number; kind: FdKind }[]; residentPages: number; ia32Pasid: number }[];
  pool: { allocated: number; parked: number; free: number };
  ioasids: { id: number; state: string; refs: number; holders: unknown; pgtbl: { kind: string; id: number; destroyed: boolean } | null }[];
  pins: [number, number][];
  allocatedFrames: number;
  routes: RouteInfo[];
  devices: { bdf: string; openedBy: { pid: number; fd: number } | null }[];
  vms: { pid: number; fd: number; memslots: Memslot[]; vcpus: number; translation: boolean; pasids: unknown[] }[];
}
