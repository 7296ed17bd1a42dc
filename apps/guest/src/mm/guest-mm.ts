// Guest processes and their address spaces: each process has its own x86-64 4-level page table in guest
// RAM (CR3 = GPA of its zeroed PML4). mmap reserves GVAs upward from MMAP_BASE, never reused within a
// process (a bump pointer, so a stale device translation can never alias a newer mapping); a page gets a
// zeroed frame from the lowest-first allocator, mapped user + writable, on its first touch (a write by GVA,
// or a device's page request: faultIn), or at mmap with `populate` (MAP_POPULATE). Memory access by GVA
// translates every page with the shared walker over the cached tables, then moves bytes in page-sized
// (coalesced) port calls; a reserved page never touched reads as zeros. EFAULT on any byte outside every
// mapping, before any byte moves.
import { KernelError } from '@app/shared/errno';
import { mapPage, unmapPage } from '@app/shared/x86/map';
import { walk4Level } from '@app/shared/x86/walk';
import type { GuestMemory } from '@app/shared/memory/guest-ram';
import { FrameAllocator } from './frame-allocator';
import { FIRST_PID, MAX_ACCESS_BYTES, MAX_MMAP_BYTES, MMAP_BASE, MMAP_LIMIT, PAGE_SIZE } from './mm.constants';
import { TableMemory } from './table-memory';

export interface Mapping {
  gva: number;
  length: number;
  /** The frame behind each page, null until the page is first touched. */
  frames: (number | null)[];
}

/** What a page request asks of one page (in guest terms). */
export interface PageAccess {
  addr: number;
  perm: { read: boolean; write: boolean; exec: boolean; privileged: boolean };
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

/** A run of bytes by GPA; gpa null: pages reserved but never touched (they read as zeros). */
type Run = { gpa: number | null; offset: number; length: number };

/** How a process's page-table changes are serialized with the rest of its operations (its lock). */
export type Serialize = <T>(pid: number, fn: () => Promise<T>) => Promise<T>;

export class GuestMm {
  private readonly procs = new Map<number, GuestProcess>();
  private nextPid = FIRST_PID;
  readonly tables = new TableMemory();
  onUnmap: UnmapHook | null = null;
  private readonly quarantined: number[] = [];

  constructor(
    /** Guest RAM (the OS's mapping of it; tests may pass the VMM's door instead). */
    private readonly port: GuestMemory,
    readonly frames: FrameAllocator,
    /** Taken to populate pages on a write by GVA (writes themselves do not take it). */
    private readonly serialize: Serialize = (_pid, fn) => fn(),
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

  /**
   * Reserves `length` bytes (rounded up to pages) of GVA, user + writable; returns the GVA. Frames come on first
   * touch; with `populate` (MAP_POPULATE) every page gets its zeroed frame now, and a failure maps nothing.
   */
  async mmap(pid: number, length: number, opts: { populate?: boolean } = {}): Promise<number> {
    const p = this.process(pid);
    if (!Number.isSafeInteger(length) || length <= 0 || length > MAX_MMAP_BYTES) {
      throw new KernelError('EINVAL', `mmap length ${length} is not in [1, ${MAX_MMAP_BYTES}]`);
    }
    const pages = Math.ceil(length / PAGE_SIZE);
    const gva = p.nextGva;
    if (gva + pages * PAGE_SIZE > MMAP_LIMIT) throw new KernelError('ENOMEM', `process ${pid} has no GVA room for ${pages} pages`);
    const m: Mapping = { gva, length: pages * PAGE_SIZE, frames: new Array<number | null>(pages).fill(null) };
    if (opts.populate) {
      try {
        await this.populate(p, m, [...m.frames.keys()]);
      } catch (err) {
        // A flush that failed part way may have let a device see the PTEs: the GVA range is never handed out again.
        if ((err as { flushed?: boolean }).flushed) p.nextGva = gva + pages * PAGE_SIZE;
        throw err;
      }
    }
    p.nextGva = gva + pages * PAGE_SIZE;
    p.mappings.push(m);
    return gva;
  }

  /**
   * A device's page request for the process (the iommu_sva fault path, iommu_sva_handle_mm): in order, each page
   * inside a mapping, for an access it allows (read, write; never exec, never a privileged one), gets its frame; the
   * first one that does not answers the group invalid. The caller holds the kernel lock.
   */
  async faultIn(pid: number, requests: readonly PageAccess[]): Promise<'success' | 'invalid'> {
    const p = this.process(pid);
    const todo = new Map<Mapping, number[]>();
    let code: 'success' | 'invalid' = 'success';
    for (const r of requests) {
      const m = this.mappingOf(p, r.addr);
      if (!m || r.perm.exec || r.perm.privileged) {
        code = 'invalid';
        break;
      }
      const i = Math.floor((r.addr - m.gva) / PAGE_SIZE);
      if (m.frames[i] === null) todo.set(m, [...(todo.get(m) ?? []), i]);
    }
    for (const [m, pages] of todo) await this.populate(p, m, pages);
    return code;
  }

  /**
   * Gives pages `pages` of mapping `m` zeroed frames and maps them. On failure nothing new stays mapped: the PTEs
   * are undone (as munmap does, when the flush had started: `flushed` on the error) and the frames freed or, if
   * that clean-up cannot reach RAM, quarantined.
   */
  private async populate(p: GuestProcess, m: Mapping, pages: number[]): Promise<void> {
    const want = pages.filter((i) => m.frames[i] === null);
    if (want.length === 0) return;
    const frames = this.frames.allocMany(want.length);
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
      for (; mapped < want.length; mapped++) {
        mapPage(this.tables, p.cr3, m.gva + want[mapped] * PAGE_SIZE, frames[mapped], { writable: true, user: true }, allocTable);
        linkedTables = newTables.length;
      }
      flushing = true;
      await this.tables.flush(this.port);
    } catch (err) {
      for (let i = 0; i < mapped; i++) unmapPage(this.tables, p.cr3, m.gva + want[i] * PAGE_SIZE);
      // Tables of the failed mapPage were never linked (it links with one final write): give them back.
      for (const t of newTables.slice(linkedTables)) {
        this.tables.forget(t);
        this.frames.free(t);
      }
      if (flushing) {
        // The flush failed part way: some PTEs may have reached RAM, and a bound device may have walked and
        // cached them. Undo them like munmap does.
        await this.release(p.pid, m.gva, m.length, frames).catch(() => undefined);
        throw Object.assign(err as object, { flushed: true });
      }
      for (const f of frames) this.frames.free(f);
      // Linked new tables stay linked (like Linux, page tables outlive their last mapping) but must reach RAM.
      await this.tables.flush(this.port).catch(() => undefined);
      throw err;
    }
    want.forEach((i, j) => (m.frames[i] = frames[j]));
  }

  /** Unmaps one whole mmap area (no splitting): clear PTEs, flush, tell the IOMMU, then free the frames. */
  async munmap(pid: number, gva: number, length: number): Promise<void> {
    const p = this.process(pid);
    const m = p.mappings.find((x) => x.gva === gva);
    if (!m || Math.ceil(length / PAGE_SIZE) * PAGE_SIZE !== m.length) {
      throw new KernelError('EINVAL', `process ${pid} has no mapping of ${length} bytes at gva 0x${gva.toString(16)}`);
    }
    const frames: number[] = [];
    m.frames.forEach((f, i) => {
      if (f === null) return;
      unmapPage(this.tables, p.cr3, gva + i * PAGE_SIZE);
      frames.push(f);
    });
    p.mappings = p.mappings.filter((x) => x !== m);
    await this.release(pid, gva, m.length, frames);
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
    for (const r of runs) if (r.gpa !== null) (await this.port.readMemory(r.gpa, r.length)).copy(out, r.offset);
    return out;
  }

  /** Writes by GVA: every byte must lie in a mapping (EFAULT, nothing written); untouched pages get their frame first. */
  async write(pid: number, gva: number, data: Buffer): Promise<void> {
    const p = this.process(pid);
    const untouched = this.untouched(p, gva, data.length);
    if (untouched.size > 0) await this.serialize(p.pid, async () => {
      for (const [m, pages] of untouched) await this.populate(p, m, pages);
    });
    for (const r of this.runs(pid, gva, data.length, true)) {
      await this.port.writeMemory(r.gpa as number, data.subarray(r.offset, r.offset + r.length));
    }
  }

  /** The pages of [gva, gva + length) not touched yet, by mapping; EFAULT if a byte lies in no mapping. */
  private untouched(p: GuestProcess, gva: number, length: number): Map<Mapping, number[]> {
    checkAccess(gva, length);
    const out = new Map<Mapping, number[]>();
    for (let va = gva - (gva % PAGE_SIZE); va < gva + length; va += PAGE_SIZE) {
      const m = this.mappingOf(p, Math.max(va, gva));
      if (!m) throw new KernelError('EFAULT', `process ${p.pid}: gva 0x${Math.max(va, gva).toString(16)} is not mapped`);
      const i = Math.floor((va - m.gva) / PAGE_SIZE);
      if (m.frames[i] === null) out.set(m, [...(out.get(m) ?? []), i]);
    }
    return out;
  }

  private mappingOf(p: GuestProcess, gva: number): Mapping | undefined {
    return p.mappings.find((m) => gva >= m.gva && gva < m.gva + m.length);
  }

  /**
   * Translates every page first (so a fault moves no byte) and merges physically contiguous pages. For a read, a
   * page reserved but never touched is a zero run (Linux's zero page), not a fault.
   */
  private runs(pid: number, gva: number, length: number, write: boolean): Run[] {
    checkAccess(gva, length);
    const p = this.process(pid);
    const runs: Run[] = [];
    let offset = 0;
    while (offset < length) {
      const va = gva + offset;
      const chunk = Math.min(length - offset, PAGE_SIZE - (va % PAGE_SIZE));
      const m = write ? undefined : this.mappingOf(p, va);
      const gpa = m && m.frames[Math.floor((va - m.gva) / PAGE_SIZE)] === null ? null : this.translate(pid, va, write);
      const last = runs.at(-1);
      if (last && gpa !== null && last.gpa !== null && last.gpa + last.length === gpa) last.length += chunk;
      else if (last && gpa === null && last.gpa === null) last.length += chunk;
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

function checkAccess(gva: number, length: number): void {
  if (!Number.isSafeInteger(gva) || gva < 0 || !Number.isSafeInteger(length) || length < 0 || length > MAX_ACCESS_BYTES) {
    throw new KernelError('EINVAL', `access of ${length} bytes at gva ${gva} is out of bounds`);
  }
}
