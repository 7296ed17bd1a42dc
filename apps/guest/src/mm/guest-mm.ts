// Guest processes and their address spaces: each process has its own x86-64 4-level page table in guest
// RAM (CR3 = GPA of its zeroed PML4). mmap hands out GVAs upward from MMAP_BASE, never reused within a
// process (a bump pointer, so a stale device translation can never alias a newer mapping), backed by
// frames from the lowest-first allocator and mapped user + writable. Memory access by GVA translates
// every page with the shared walker over the cached tables, then moves bytes in page-sized (coalesced)
// port calls. EFAULT on any unmapped byte, before any byte moves.
import { KernelError } from '@app/shared/errno';
import { mapPage, unmapPage } from '@app/shared/x86/map';
import { walk4Level } from '@app/shared/x86/walk';
import type { VmmPort } from '../vmm.port';
import { FrameAllocator } from './frame-allocator';
import { FIRST_PID, MAX_ACCESS_BYTES, MAX_MMAP_BYTES, MMAP_BASE, MMAP_LIMIT, PAGE_SIZE } from './mm.constants';
import { TableMemory } from './table-memory';

export interface Mapping {
  gva: number;
  length: number;
  frames: number[];
}

export interface GuestProcess {
  pid: number;
  name: string;
  /** GPA of the PML4. */
  cr3: number;
  mappings: Mapping[];
  nextGva: number;
}

/**
 * Called after PTEs are cleared and before their frames are freed (the mmu_notifier invalidate_range hook of
 * SVA). A rejection means the IOTLB may still hold the old translation: the frames are then never freed.
 */
export type UnmapHook = (pid: number, gva: number, length: number) => Promise<void>;

type Run = { gpa: number; offset: number; length: number };

export class GuestMm {
  private readonly procs = new Map<number, GuestProcess>();
  private nextPid = FIRST_PID;
  readonly tables = new TableMemory();
  onUnmap: UnmapHook | null = null;
  private readonly quarantined: number[] = [];

  constructor(
    private readonly port: Pick<VmmPort, 'readMemory' | 'writeMemory'>,
    readonly frames: FrameAllocator,
  ) {}

  processes(): GuestProcess[] {
    return [...this.procs.values()];
  }

  process(pid: number): GuestProcess {
    const p = this.procs.get(pid);
    if (!p) throw new KernelError('ESRCH', `no guest process ${pid}`);
    return p;
  }

  async createProcess(name: string): Promise<GuestProcess> {
    const cr3 = this.frames.alloc();
    this.tables.adopt(cr3);
    try {
      await this.tables.flush(this.port);
    } catch (err) {
      this.tables.forget(cr3);
      this.frames.free(cr3);
      throw err;
    }
    const p: GuestProcess = { pid: this.nextPid++, name, cr3, mappings: [], nextGva: MMAP_BASE };
    this.procs.set(p.pid, p);
    return p;
  }

  /** Maps `length` bytes (rounded up to pages) of fresh zeroed frames user + writable; returns the GVA. */
  async mmap(pid: number, length: number): Promise<number> {
    const p = this.process(pid);
    if (!Number.isSafeInteger(length) || length <= 0 || length > MAX_MMAP_BYTES) {
      throw new KernelError('EINVAL', `mmap length ${length} is not in [1, ${MAX_MMAP_BYTES}]`);
    }
    const pages = Math.ceil(length / PAGE_SIZE);
    const gva = p.nextGva;
    if (gva + pages * PAGE_SIZE > MMAP_LIMIT) throw new KernelError('ENOMEM', `process ${pid} has no GVA room for ${pages} pages`);
    const frames = this.frames.allocMany(pages);
    const newTables: number[] = [];
    const allocTable = (): number => {
      const t = this.frames.alloc();
      this.tables.adopt(t);
      newTables.push(t);
      return t;
    };
    let mapped = 0;
    let linkedTables = 0;
    let flushing = false;
    try {
      // Zero the data frames first: a reused frame must not leak another process's bytes.
      await this.zeroFrames(frames);
      for (; mapped < pages; mapped++) {
        mapPage(this.tables, p.cr3, gva + mapped * PAGE_SIZE, frames[mapped], { writable: true, user: true }, allocTable);
        linkedTables = newTables.length;
      }
      flushing = true;
      await this.tables.flush(this.port);
    } catch (err) {
      for (let i = 0; i < mapped; i++) unmapPage(this.tables, p.cr3, gva + i * PAGE_SIZE);
      // Tables of the failed mapPage were never linked (it links with one final write): give them back.
      for (const t of newTables.slice(linkedTables)) {
        this.tables.forget(t);
        this.frames.free(t);
      }
      if (flushing) {
        // The flush failed part way: some PTEs may have reached RAM, and a bound device may have walked and
        // cached them. Undo them like munmap does, and burn the GVA range (never handed out again).
        p.nextGva = gva + pages * PAGE_SIZE;
        await this.release(pid, gva, pages * PAGE_SIZE, frames).catch(() => undefined);
        throw err;
      }
      for (const f of frames) this.frames.free(f);
      // Linked new tables stay linked (like Linux, page tables outlive their last mapping) but must reach RAM.
      await this.tables.flush(this.port).catch(() => undefined);
      throw err;
    }
    p.nextGva = gva + pages * PAGE_SIZE;
    p.mappings.push({ gva, length: pages * PAGE_SIZE, frames });
    return gva;
  }

  /** Unmaps one whole mmap area (no splitting): clear PTEs, flush, tell the IOMMU, then free the frames. */
  async munmap(pid: number, gva: number, length: number): Promise<void> {
    const p = this.process(pid);
    const m = p.mappings.find((x) => x.gva === gva);
    if (!m || Math.ceil(length / PAGE_SIZE) * PAGE_SIZE !== m.length) {
      throw new KernelError('EINVAL', `process ${pid} has no mapping of ${length} bytes at gva 0x${gva.toString(16)}`);
    }
    for (let i = 0; i < m.frames.length; i++) unmapPage(this.tables, p.cr3, gva + i * PAGE_SIZE);
    p.mappings = p.mappings.filter((x) => x !== m);
    await this.release(pid, gva, m.length, m.frames);
  }

  /** Frames held back for good because a device may still reach them (see release). */
  quarantinedFrames(): number[] {
    return [...this.quarantined];
  }

  /**
   * The PTEs of [gva, gva + length) are cleared in the cache: write them to RAM, invalidate the device's
   * IOTLB, then free the frames. If either step fails, a device may still translate to these frames (an old
   * PTE in RAM or a stale IOTLB entry), so they stay allocated, quarantined, rather than be reused.
   */
  private async release(pid: number, gva: number, length: number, frames: number[]): Promise<void> {
    try {
      await this.tables.flush(this.port);
      if (this.onUnmap) await this.onUnmap(pid, gva, length);
    } catch (err) {
      this.quarantined.push(...frames);
      throw err;
    }
    for (const f of frames) this.frames.free(f);
  }

  /** GPA of `gva` in `pid`'s address space (a CPU walk that does not set A/D); EFAULT when not mapped. */
  translate(pid: number, gva: number, write: boolean): number {
    const p = this.process(pid);
    const r = walk4Level(p.cr3, gva, { write }, this.tables.readOnly());
    if (!r.ok) throw new KernelError('EFAULT', `process ${pid}: gva 0x${gva.toString(16)} does not translate (${r.reason} at level ${r.level})`);
    if (!r.user) throw new KernelError('EFAULT', `process ${pid}: gva 0x${gva.toString(16)} is not a user page`);
    return r.address;
  }

  async read(pid: number, gva: number, length: number): Promise<Buffer> {
    const runs = this.runs(pid, gva, length, false);
    const out = Buffer.alloc(length);
    for (const r of runs) (await this.port.readMemory(r.gpa, r.length)).copy(out, r.offset);
    return out;
  }

  async write(pid: number, gva: number, data: Buffer): Promise<void> {
    for (const r of this.runs(pid, gva, data.length, true)) {
      await this.port.writeMemory(r.gpa, data.subarray(r.offset, r.offset + r.length));
    }
  }

  /** Translates every page first (so a fault moves no byte) and merges physically contiguous pages. */
  private runs(pid: number, gva: number, length: number, write: boolean): Run[] {
    if (!Number.isSafeInteger(gva) || gva < 0 || !Number.isSafeInteger(length) || length < 0 || length > MAX_ACCESS_BYTES) {
      throw new KernelError('EINVAL', `access of ${length} bytes at gva ${gva} is out of bounds`);
    }
    const runs: Run[] = [];
    let offset = 0;
    while (offset < length) {
      const va = gva + offset;
      const chunk = Math.min(length - offset, PAGE_SIZE - (va % PAGE_SIZE));
      const gpa = this.translate(pid, va, write);
      const last = runs.at(-1);
      if (last && last.gpa + last.length === gpa) last.length += chunk;
      else runs.push({ gpa, offset, length: chunk });
      offset += chunk;
    }
    return runs;
  }

  private async zeroFrames(frames: number[]): Promise<void> {
    let i = 0;
    while (i < frames.length) {
      let j = i + 1;
      while (j < frames.length && frames[j] === frames[j - 1] + PAGE_SIZE) j++;
      await this.port.writeMemory(frames[i], Buffer.alloc((j - i) * PAGE_SIZE));
      i = j;
    }
  }
}
