// The whole guest OS: boots on the machine its VMM describes (frame allocator over its RAM, one PASID
// directory per device), then runs processes (mm/), SVA binds (iommu/) and accelerator submissions
// (drivers/). Operations that change kernel state run one at a time (a big kernel lock): the
// page-table cache and the PASID tables have a single writer. Memory reads/writes by GVA and the
// completion polling of a submission do not take the lock.
import { KernelError } from '@app/shared/errno';
import { AccelDriver, AccelOptions, SubmitRequest, SubmitResult } from './drivers/accel-driver';
import { handlePageRequest, type PageFaultAnswer } from './iommu/page-fault';
import { SvaDriver } from './iommu/sva';
import { FrameAllocator } from './mm/frame-allocator';
import { GuestMm } from './mm/guest-mm';
import type { GuestFault, GuestMachine, VirtualPageRequest, VmmPort } from './vmm.port';

export interface GuestStatus {
  booted: boolean;
  machine: GuestMachine | null;
  frames: { total: number; free: number };
  processes: Array<{ pid: number; name: string; cr3: number; mappings: number; vpasid: number | null; vrids: number[] }>;
}

interface Booted {
  machine: GuestMachine;
  mm: GuestMm;
  sva: SvaDriver;
  accel: AccelDriver;
}

export class GuestOs {
  private state: Booted | null = null;
  private lock: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly vmm: VmmPort,
    private readonly accelOptions: AccelOptions = {},
  ) {}

  async boot(): Promise<GuestMachine> {
    return this.locked(async () => {
      if (this.state) throw new KernelError('EBUSY', 'the guest OS is already booted');
      const machine = await this.vmm.machine();
      const frames = new FrameAllocator(machine.memoryMiB * 1024 * 1024);
      // A write by GVA to a page never touched maps it: a page-table change, under the kernel lock.
      const mm = new GuestMm(this.vmm, frames, (fn) => this.locked(fn));
      const sva = new SvaDriver(this.vmm, frames, mm);
      await sva.boot(machine.devices.map((d) => d.vrid));
      // munmap → PASID-based IOTLB invalidation before the frames are reused (the SVA mmu_notifier).
      mm.onUnmap = (pid, gva, length) => sva.flushIotlb(pid, gva, length);
      this.state = {
        machine,
        mm,
        sva,
        accel: new AccelDriver(this.vmm, mm, sva, this.accelOptions, (pid, length) => this.locked(() => mm.mmap(pid, length))),
      };
      return machine;
    });
  }

  status(): GuestStatus {
    const s = this.state;
    if (!s) return { booted: false, machine: null, frames: { total: 0, free: 0 }, processes: [] };
    const binds = new Map(s.sva.bindings().map((b) => [b.pid, b]));
    return {
      booted: true,
      machine: structuredClone(s.machine),
      frames: { total: s.mm.frames.totalFrames, free: s.mm.frames.freeFrames },
      processes: s.mm.processes().map((p) => ({
        pid: p.pid,
        name: p.name,
        cr3: p.cr3,
        mappings: p.mappings.length,
        vpasid: s.sva.vpasidOf(p.pid),
        vrids: binds.get(p.pid)?.vrids ?? [],
      })),
    };
  }

  async createProcess(name: string): Promise<number> {
    return this.locked(async () => (await this.booted().mm.createProcess(name)).pid);
  }

  /** Reserves GVAs (frames on first touch); `populate` maps every page now (MAP_POPULATE). */
  async mmap(pid: number, length: number, populate = false): Promise<number> {
    return this.locked(() => this.booted().mm.mmap(pid, length, { populate }));
  }

  /** A device's page request, as the vIOMMU driver's fault handler takes it (a page-table change: under the lock). */
  async handlePageRequest(pr: VirtualPageRequest): Promise<{ pid: number | null; code: PageFaultAnswer }> {
    return this.locked(async () => {
      const s = this.booted();
      return handlePageRequest(s.sva, s.mm, pr);
    });
  }

  async munmap(pid: number, gva: number, length: number): Promise<void> {
    return this.locked(() => this.booted().mm.munmap(pid, gva, length));
  }

  readMemory(pid: number, gva: number, length: number): Promise<Buffer> {
    return this.booted().mm.read(pid, gva, length);
  }

  writeMemory(pid: number, gva: number, data: Buffer): Promise<void> {
    return this.booted().mm.write(pid, gva, data);
  }

  async bind(pid: number, vrid: number): Promise<number> {
    return this.locked(() => this.booted().sva.bind(pid, vrid));
  }

  async unbind(pid: number, vrid: number): Promise<void> {
    return this.locked(() => this.booted().sva.unbind(pid, vrid));
  }

  async submit(pid: number, vrid: number, req: SubmitRequest, vcpu = 0): Promise<SubmitResult> {
    const s = this.booted();
    if (!s.machine.devices.some((d) => d.vrid === vrid)) throw new KernelError('ENODEV', `no device with vrid 0x${Number(vrid).toString(16)}`);
    if (!Number.isInteger(vcpu) || vcpu < 0 || vcpu >= s.machine.vcpus) throw new KernelError('EINVAL', `no vCPU ${vcpu}`);
    return s.accel.submit(pid, vrid, req, vcpu);
  }

  /** A vIOMMU fault record the VMM pushed: the accelerator driver may be waiting on what it concerns. */
  deviceFault(f: GuestFault): void {
    this.state?.accel.deviceFault(f);
  }

  private booted(): Booted {
    if (!this.state) throw new KernelError('ENODEV', 'the guest OS has not booted');
    return this.state;
  }

  private locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn);
    this.lock = run.catch(() => undefined);
    return run;
  }
}
