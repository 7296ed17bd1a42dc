import { KernelError } from '@app/shared/errno';
import { memoryFiles, type MemFile, type MemFileBackend } from '@app/shared/memory/mem-file';
import { Tx } from '../fault-injection';
import { PhysicalMemory } from './physical-memory';
import { MEMORY_IO_MAX, MMAP_BASE, MMAP_END, MMAP_MAX_LENGTH, PAGE_SIZE, pageIndex, pageOffset } from './memory.constants';

interface Vma {
  start: number;
  end: number;
  /** A shared mapping's memory file (MAP_SHARED of a memfd): its pages are the file's. */
  file?: MemFile;
}

/** What the MMU (or an IOMMU walking this mm for SVA) finds at a virtual address. */
export interface MmTranslation {
  hpa: number;
  writable: boolean;
}

/** What one address space may hold (limits/limits.ts: MEM_LIMIT_MIB, PIN_LIMIT_MIB), in pages. */
export interface MemoryLimits {
  residentPages: number;
  pinnedPages: number;
}

const UNLIMITED: MemoryLimits = { residentPages: Number.MAX_SAFE_INTEGER, pinnedPages: Number.MAX_SAFE_INTEGER };

/**
 * A process's user address space: anonymous read/write mappings whose pages get a frame on first
 * touch (a read of an untouched page sees zeros without allocating, like the zero page). It may hold at
 * most `limits.residentPages` frames and pin at most `limits.pinnedPages` of them for DMA (ENOMEM beyond).
 */
export class AddressSpace {
  private readonly vmas: Vma[] = [];
  private readonly pages = new Map<number, number>(); // virtual page number → pfn
  private nextHva = MMAP_BASE;
  private alive = true;
  /** Pages pinned for DMA through this mm (a page mapped twice counts twice, as iommufd charges it). */
  private pinned = 0;

  constructor(
    private readonly memory: PhysicalMemory,
    private readonly limits: MemoryLimits = UNLIMITED,
    /** Where shared mappings' memory files come from. */
    private readonly files: MemFileBackend = memoryFiles,
  ) {}

  /** Anonymous mmap: length rounded up to pages (Linux do_mmap); 0 → EINVAL; no room below MMAP_END → ENOMEM. */
  mmap(tx: Tx, length: number): number {
    const vma = this.placeVma(length);
    this.addVma(tx, vma);
    return vma.start;
  }

  /**
   * A shared mapping backed by a new memory file (memfd_create + ftruncate + mmap MAP_SHARED, populated): every page
   * gets its frame now, the file's page, counted against MEM_LIMIT_MIB (ENOMEM, nothing mapped). The file goes to
   * the caller (the owner hands it on: the VMM to its guest); its name is unlinked when this mm is torn down.
   */
  mmapShared(tx: Tx, length: number): { hva: number; file: MemFile } {
    const vma: Vma = this.placeVma(length);
    const pages = (vma.end - vma.start) / PAGE_SIZE;
    if (this.pages.size + pages > this.limits.residentPages) {
      throw new KernelError('ENOMEM', `a ${pages}-page shared mapping would exceed the ${this.limits.residentPages}-page limit (MEM_LIMIT_MIB; ${this.pages.size} resident)`);
    }
    const file = tx.do(
      'mm.memfd',
      () => this.files.create(vma.end - vma.start),
      (f) => this.files.unlink(f.name),
    );
    vma.file = file;
    const pfns = this.memory.allocFileFrames(tx, file.bytes);
    const first = pageIndex(vma.start);
    tx.do(
      'mm.populate-shared',
      () => pfns.forEach((pfn, i) => this.pages.set(first + i, pfn)),
      () => pfns.forEach((_pfn, i) => this.pages.delete(first + i)),
    );
    this.addVma(tx, vma);
    return { hva: vma.start, file };
  }

  private placeVma(length: number): Vma {
    if (!Number.isSafeInteger(length) || length <= 0) throw new KernelError('EINVAL', `mmap length must be a positive integer, got ${length}`);
    if (length > MMAP_MAX_LENGTH) throw new KernelError('ENOMEM', `mmap of ${length} bytes exceeds the ${MMAP_MAX_LENGTH}-byte limit`);
    const size = Math.ceil(length / PAGE_SIZE) * PAGE_SIZE;
    const vma = { start: this.nextHva, end: this.nextHva + size };
    if (vma.end > MMAP_END) {
      throw new KernelError('ENOMEM', `mmap of ${size} bytes at 0x${vma.start.toString(16)} would end beyond the user address space (0x${MMAP_END.toString(16)})`);
    }
    return vma;
  }

  private addVma(tx: Tx, vma: Vma): void {
    tx.do(
      'mm.mmap',
      () => {
        this.vmas.push(vma);
        this.nextHva = vma.end;
      },
      () => {
        this.vmas.pop();
        this.nextHva = vma.start;
      },
    );
  }

  /** True if every byte of [hva, hva + length) lies in a mapping. */
  isMapped(hva: number, length: number): boolean {
    if (!Number.isSafeInteger(hva) || !Number.isSafeInteger(length) || hva < 0 || length < 0) return false;
    let at = hva;
    const end = hva + length;
    while (at < end) {
      const vma = this.findVma(at);
      if (!vma) return false;
      at = vma.end;
    }
    return true;
  }

  /** Fault in and pin every page of a page-aligned mapped range (GUP with FOLL_LONGTERM); returns the pfns. */
  pinRange(tx: Tx, hva: number, length: number): number[] {
    this.requireMapped(hva, length);
    const n = pageIndex(hva + length) - pageIndex(hva);
    if (this.pinned + n > this.limits.pinnedPages) {
      throw new KernelError('ENOMEM', `pinning ${n} more pages would exceed the ${this.limits.pinnedPages}-page pin limit (PIN_LIMIT_MIB; ${this.pinned} pinned)`);
    }
    tx.do('mm.pin-account', () => (this.pinned += n), () => (this.pinned -= n));
    const pfns: number[] = [];
    for (let vpn = pageIndex(hva); vpn < pageIndex(hva + length); vpn++) {
      const pfn = this.populate(tx, vpn);
      this.memory.pin(tx, pfn);
      pfns.push(pfn);
    }
    return pfns;
  }

  /** Drop the pins pinRange took (UNMAP of the area they back). */
  unpinRange(tx: Tx, pfns: readonly number[]): void {
    for (const pfn of pfns) this.memory.unpin(tx, pfn);
    tx.do('mm.unpin-account', () => (this.pinned -= pfns.length), () => (this.pinned += pfns.length));
  }

  get pinnedPages(): number {
    return this.pinned;
  }

  read(hva: number, length: number): Buffer {
    this.checkIo(hva, length);
    const out = Buffer.alloc(length);
    for (let done = 0; done < length; ) {
      const at = hva + done;
      const n = Math.min(PAGE_SIZE - pageOffset(at), length - done);
      const pfn = this.pages.get(pageIndex(at));
      if (pfn !== undefined) this.memory.read(pfn * PAGE_SIZE + pageOffset(at), n).copy(out, done);
      done += n;
    }
    return out;
  }

  /** Write: checks the whole range first (EFAULT, nothing written), faults pages in, then copies. */
  write(tx: Tx, hva: number, data: Buffer): void {
    this.prepareWrite(tx, hva, data.length);
    for (let done = 0; done < data.length; ) {
      const at = hva + done;
      const n = Math.min(PAGE_SIZE - pageOffset(at), data.length - done);
      const pfn = this.pages.get(pageIndex(at)) as number;
      this.memory.write(pfn * PAGE_SIZE + pageOffset(at), data.subarray(done, done + n));
      done += n;
    }
  }

  /** Check a write of [hva, hva + length) and fault its pages in, so the copy itself cannot fail. */
  prepareWrite(tx: Tx, hva: number, length: number): void {
    this.checkIo(hva, length);
    const end = hva + length;
    for (let vpn = pageIndex(hva); vpn * PAGE_SIZE < end; vpn++) this.populate(tx, vpn);
  }

  /**
   * The mm page table seen by an IOMMU doing SVA: a present page, or null (not present, unmapped, or a dead mm).
   * A mapped page not yet touched is not present: a device reaches it only through a page request, which the
   * kernel resolves with handleMmFault, as the CPU's first touch does.
   */
  translate(hva: number): MmTranslation | null {
    if (!this.alive) return null;
    const pfn = this.pages.get(pageIndex(hva));
    return pfn === undefined ? null : { hpa: pfn * PAGE_SIZE + pageOffset(hva), writable: true };
  }

  /**
   * A page request for this mm (Linux iommu_sva_handle_mm → handle_mm_fault): inside a mapping, populate the page
   * and succeed; outside any mapping, for an access the mapping does not allow (mappings are read-write, never
   * executable), a dead mm or no memory left: fail. Outside any transaction: what a device asked for is hardware's
   * doing, journaled by the page request's own rows, like the frames a first CPU touch allocates.
   */
  handleMmFault(hva: number, perm: { read: boolean; write: boolean; exec: boolean }): boolean {
    if (!this.alive || perm.exec || !this.findVma(hva)) return false;
    const vpn = pageIndex(hva);
    if (this.pages.has(vpn)) return true;
    // MEM_LIMIT_MIB or no frame left: VM_FAULT_OOM is a VM_FAULT_ERROR, the request is answered invalid.
    if (this.pages.size >= this.limits.residentPages) return false;
    try {
      this.pages.set(vpn, this.memory.allocFrameNow());
    } catch {
      return false;
    }
    return true;
  }

  /**
   * exit_mmap: free every frame (after the fds are closed, so none is pinned any more), and unlink the memory files
   * of shared mappings: a dead VM's file can be mapped by nobody again (what its holders still map is theirs).
   */
  teardown(): void {
    this.alive = false;
    for (const pfn of this.pages.values()) this.memory.freeFrame(pfn);
    this.pages.clear();
    for (const vma of this.vmas) if (vma.file) this.files.unlink(vma.file.name);
    this.vmas.length = 0;
  }

  /** The memory files of this mm's shared mappings (their names: kernel state, tests). */
  sharedFiles(): { hva: number; length: number; name: string }[] {
    return this.vmas.flatMap((v) => (v.file ? [{ hva: v.start, length: v.end - v.start, name: v.file.name }] : []));
  }

  get residentPages(): number {
    return this.pages.size;
  }

  /** The frame of every resident page (audits: no frame belongs to two address spaces). */
  frames(): IterableIterator<number> {
    return this.pages.values();
  }

  private populate(tx: Tx, vpn: number): number {
    const present = this.pages.get(vpn);
    if (present !== undefined) return present;
    if (this.pages.size >= this.limits.residentPages) {
      throw new KernelError('ENOMEM', `the address space holds ${this.pages.size} pages, its limit (MEM_LIMIT_MIB)`);
    }
    const pfn = this.memory.allocFrame(tx);
    this.pages.set(vpn, pfn);
    tx.onUndo(() => this.pages.delete(vpn));
    return pfn;
  }

  private requireMapped(hva: number, length: number): void {
    if (!this.isMapped(hva, length)) throw new KernelError('EFAULT', `hva range [0x${hva.toString(16)}, +${length}) is not mapped`);
  }

  private checkIo(hva: number, length: number): void {
    if (!Number.isSafeInteger(length) || length < 0 || length > MEMORY_IO_MAX) {
      throw new KernelError('EINVAL', `memory access of ${length} bytes (max ${MEMORY_IO_MAX})`);
    }
    this.requireMapped(hva, length);
  }

  private findVma(hva: number): Vma | undefined {
    let lo = 0;
    let hi = this.vmas.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const vma = this.vmas[mid];
      if (hva < vma.start) hi = mid - 1;
      else if (hva >= vma.end) lo = mid + 1;
      else return vma;
    }
    return undefined;
  }
}
