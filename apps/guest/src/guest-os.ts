// The whole guest OS: boots on the machine its VMM describes (its RAM mapped, a frame allocator over it, one PASID
// directory per device), then runs processes (mm/), SVA binds (iommu/) and accelerator submissions (drivers/).
// Guest RAM is the VM's memory file mapped in this process: every load and store of the OS is a plain copy, no call.
// Operations that change a process's state (mmap, munmap, bind, unbind, a page request for it, populating its
// pages) hold that process's lock, like Linux's per-mm mmap_lock and the per-mm SVA bind: two processes bind and
// unbind concurrently, one process's steps stay in order. What they share (the frame allocator, the page-table
// cache, the vPASID allocator) changes only in synchronous stretches, so no lock guards it; a new PASID table, linked
// over several writes, is linked once per directory entry (sva.ts). Boot takes every lock (a barrier). Memory
// reads/writes by GVA and completion polling take no lock.
import { KernelError } from '@app/shared/errno';
import { ScopedQueue } from '@app/shared/sched/scoped-queue';
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
  /** One lock per guest process (keyed by pid); boot is a barrier over all of them. */
  private readonly locks = new ScopedQueue<number>();

  constructor(
    private readonly vmm: VmmPort,
    private readonly accelOptions: AccelOptions = {},
  ) {}

  async boot(): Promise<GuestMachine> {
    return this.locks.run('all', async () => {
      if (this.state) throw new KernelError('EBUSY', 'the guest OS is already booted');
      const machine = await this.vmm.machine();
      // Guest RAM, mapped: page tables, PASID entries, completion records and console bytes go straight into it.
      const ram = await this.vmm.mapRam();
      const frames = new FrameAllocator(machine.memoryMiB * 1024 * 1024);
      // A write by GVA to a page never touched maps it: a page-table change, under the process's lock.
      const mm = new GuestMm(ram, frames, (pid, fn) => this.locked(pid, fn));
      const sva = new SvaDriver({ writeMemory: (gpa, data) => ram.writeMemory(gpa, data), setContext: (vrid, dir) => this.vmm.setContext(vrid, dir), invalidate: (d) => this.vmm.invalidate(d) }, frames, mm);
      await sva.boot(machine.devices.map((d) => d.vrid));
      // munmap → PASID-based IOTLB invalidation before the frames are reused (the SVA mmu_notifier).
      mm.onUnmap = (pid, gva, length) => sva.flushIotlb(pid, gva, length);
      this.state = {
        machine,
        mm,
        sva,
        accel: new AccelDriver(this.vmm, mm, sva, this.accelOptions, (pid, length) => this.locked(pid, () => mm.mmap(pid, length))),
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

  /** A new process touches only its own new page table (and the shared allocator, synchronously): no process lock. */
  async createProcess(name: string): Promise<number> {
    return this.locks.run([], async () => (await this.booted().mm.createProcess(name)).pid);
  }

  /** Reserves GVAs (frames on first touch); `populate` maps every page now (MAP_POPULATE). */
  async mmap(pid: number, length: number, populate = false): Promise<number> {
    return this.locked(pid, () => this.booted().mm.mmap(pid, length, { populate }));
  }

  /** A device's page request, as the vIOMMU driver's fault handler takes it (a page-table change: under the owner's lock). */
  async handlePageRequest(pr: VirtualPageRequest): Promise<{ pid: number | null; code: PageFaultAnswer }> {
    const s = this.booted();
    const owner = s.sva.ownerOf(pr.vpasid);
    // Nobody bound with it: answered at once (invalid), nothing to lock.
    if (!owner) return handlePageRequest(s.sva, s.mm, pr);
    return this.locked(owner.pid, () => handlePageRequest(s.sva, s.mm, pr));
  }

  async munmap(pid: number, gva: number, length: number): Promise<void> {
    return this.locked(pid, () => this.booted().mm.munmap(pid, gva, length));
  }

  readMemory(pid: number, gva: number, length: number): Promise<Buffer> {
    return this.booted().mm.read(pid, gva, length);
  }

  writeMemory(pid: number, gva: number, data: Buffer): Promise<void> {
    return this.booted().mm.write(pid, gva, data);
  }

  async bind(pid: number, vrid: number): Promise<number> {
    return this.locked(pid, () => this.booted().sva.bind(pid, vrid));
  }

  async unbind(pid: number, vrid: number): Promise<void> {
    return this.locked(pid, () => this.booted().sva.unbind(pid, vrid));
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

  /** Runs `fn` under process `pid`'s lock (after that process's earlier operations, beside other processes'). */
  private locked<T>(pid: number, fn: () => Promise<T>): Promise<T> {
    return this.locks.run([pid], fn);
  }
}
