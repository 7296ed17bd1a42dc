import { KernelError } from '@app/shared/errno';
import { Tx } from '../fault-injection';
import { IdAllocator } from '../lib/id-allocator';
import { FRAMES_PER_MIB, PAGE_SIZE, pageIndex, pageOffset } from './memory.constants';

/**
 * Host physical memory: `memoryMiB` of 4 KiB frames. A frame is allocated (counted against the total,
 * ENOMEM beyond) when a process first touches a page; its bytes exist only once written (sparse).
 * pfn 0 is never handed out, so hpa 0 is never a valid translation.
 */
export class PhysicalMemory {
  readonly totalFrames: number;
  private readonly frames: IdAllocator;
  private readonly bytes = new Map<number, Buffer>();
  private readonly pins = new Map<number, number>();

  constructor(memoryMiB: number) {
    if (!Number.isInteger(memoryMiB) || memoryMiB < 1) throw new KernelError('EINVAL', `memoryMiB must be a positive integer, got ${memoryMiB}`);
    this.totalFrames = memoryMiB * FRAMES_PER_MIB;
    this.frames = new IdAllocator(this.totalFrames + 1);
    this.frames.reserve(0);
  }

  get allocatedFrames(): number {
    return this.frames.used - 1;
  }

  /** Allocate a zeroed frame; ENOMEM when all are in use. */
  allocFrame(tx: Tx): number {
    return tx.do(
      'frame.alloc',
      () => this.allocFrameNow(),
      (pfn) => this.freeFrame(pfn),
    );
  }

  /** Allocation outside a transaction (the data plane resolving a fault on an mm page table). */
  allocFrameNow(): number {
    const pfn = this.frames.alloc();
    if (pfn === null) throw new KernelError('ENOMEM', `out of physical memory (${this.totalFrames} frames in use)`);
    return pfn;
  }

  /**
   * One frame per page of `file` (a shared mapping's memory file), all or none: each frame's bytes are the file's
   * page, so what the file's other holders write is what the CPU, KVM and DMA read here, and the reverse. ENOMEM
   * (nothing taken) when not that many frames are free.
   */
  allocFileFrames(tx: Tx, file: Buffer): number[] {
    const n = Math.ceil(file.length / PAGE_SIZE);
    if (n > this.frames.free) throw new KernelError('ENOMEM', `out of physical memory: ${n} frames wanted, ${this.frames.free} free`);
    return tx.do(
      'frame.alloc-file',
      () => {
        const pfns: number[] = [];
        for (let i = 0; i < n; i++) {
          const pfn = this.allocFrameNow();
          this.bytes.set(pfn, file.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE));
          pfns.push(pfn);
        }
        return pfns;
      },
      (pfns) => {
        for (const pfn of pfns) this.freeFrame(pfn);
      },
    );
  }

  /** Frees the frame; a frame of a memory file only lets go of the file's page (the file keeps its bytes). */
  freeFrame(pfn: number): void {
    if (this.pinCount(pfn) > 0) throw new KernelError('EBUSY', `frame ${pfn} is pinned`);
    this.bytes.delete(pfn);
    this.frames.release(pfn);
  }

  pin(tx: Tx, pfn: number): void {
    tx.do('frame.pin', () => this.addPin(pfn, 1), () => this.addPin(pfn, -1));
  }

  unpin(tx: Tx, pfn: number): void {
    this.addPin(pfn, -1);
    tx.onUndo(() => this.addPin(pfn, 1));
  }

  pinCount(pfn: number): number {
    return this.pins.get(pfn) ?? 0;
  }

  /** Every pinned frame and its pin count (for audits and tests). */
  pinnedFrames(): Map<number, number> {
    return new Map(this.pins);
  }

  /** Bytes at [hpa, hpa + length); never-written bytes read as zero. */
  read(hpa: number, length: number): Buffer {
    this.checkRange(hpa, length);
    const out = Buffer.alloc(length);
    for (let done = 0; done < length; ) {
      const at = hpa + done;
      const n = Math.min(PAGE_SIZE - pageOffset(at), length - done);
      this.bytes.get(pageIndex(at))?.copy(out, done, pageOffset(at), pageOffset(at) + n);
      done += n;
    }
    return out;
  }

  /** Write into allocated frames (a free frame → EFAULT; check all pages first so nothing is half-written). */
  write(hpa: number, data: Buffer): void {
    this.checkRange(hpa, data.length);
    for (let page = pageIndex(hpa); page <= pageIndex(hpa + Math.max(data.length, 1) - 1); page++) {
      if (!this.frames.isUsed(page)) throw new KernelError('EFAULT', `hpa ${page * PAGE_SIZE} is in a free frame`);
    }
    for (let done = 0; done < data.length; ) {
      const at = hpa + done;
      const n = Math.min(PAGE_SIZE - pageOffset(at), data.length - done);
      let frame = this.bytes.get(pageIndex(at));
      if (!frame) {
        frame = Buffer.alloc(PAGE_SIZE);
        this.bytes.set(pageIndex(at), frame);
      }
      data.copy(frame, pageOffset(at), done, done + n);
      done += n;
    }
  }

  private addPin(pfn: number, delta: number): void {
    const count = this.pinCount(pfn) + delta;
    if (count < 0) throw new RangeError(`frame ${pfn} unpinned more than pinned`);
    if (count === 0) this.pins.delete(pfn);
    else this.pins.set(pfn, count);
  }

  private checkRange(hpa: number, length: number): void {
    const end = (this.totalFrames + 1) * PAGE_SIZE;
    if (!Number.isSafeInteger(hpa) || !Number.isSafeInteger(length) || hpa < PAGE_SIZE || length < 0 || hpa + length > end) {
      throw new KernelError('EFAULT', `hpa range [${hpa}, +${length}) is outside physical memory`);
    }
  }
}
