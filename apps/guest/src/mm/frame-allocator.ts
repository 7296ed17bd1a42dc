// Guest physical page allocator: one bit per 4 KiB frame of guest RAM, lowest free frame first
// (deterministic, so the same run allocates the same GPAs). Page 0 stays reserved.
import { KernelError } from '@app/shared/errno';
import { PAGE_SIZE, RESERVED_LOW_PAGES } from './mm.constants';

export class FrameAllocator {
  private readonly used: Uint8Array;
  /** Every frame below this index is in use: the lowest-first search starts here. */
  private hint = RESERVED_LOW_PAGES;
  private inUse = 0;

  constructor(readonly ramBytes: number) {
    if (!Number.isSafeInteger(ramBytes) || ramBytes <= 0 || ramBytes % PAGE_SIZE !== 0) {
      throw new KernelError('EINVAL', `guest RAM of ${ramBytes} bytes is not a whole number of pages`);
    }
    this.used = new Uint8Array(ramBytes / PAGE_SIZE);
    for (let i = 0; i < Math.min(RESERVED_LOW_PAGES, this.used.length); i++) this.used[i] = 1;
  }

  get totalFrames(): number {
    return this.used.length;
  }

  get freeFrames(): number {
    return this.used.length - Math.min(RESERVED_LOW_PAGES, this.used.length) - this.inUse;
  }

  /** GPA of the lowest free frame; ENOMEM when RAM is full. */
  alloc(): number {
    for (let i = this.hint; i < this.used.length; i++) {
      if (this.used[i] === 0) {
        this.used[i] = 1;
        this.inUse++;
        this.hint = i + 1;
        return i * PAGE_SIZE;
      }
    }
    throw new KernelError('ENOMEM', `no free frame in ${this.used.length} frames of guest RAM`);
  }

  /** n frames or none (ENOMEM leaves the allocator unchanged). */
  allocMany(n: number): number[] {
    if (n > this.freeFrames) throw new KernelError('ENOMEM', `${n} frames wanted, ${this.freeFrames} free`);
    return Array.from({ length: n }, () => this.alloc());
  }

  free(gpa: number): void {
    const i = gpa / PAGE_SIZE;
    if (!Number.isInteger(i) || i < RESERVED_LOW_PAGES || i >= this.used.length || this.used[i] === 0) {
      throw new KernelError('EINVAL', `gpa 0x${gpa.toString(16)} is not an allocated frame`);
    }
    this.used[i] = 0;
    this.inUse--;
    if (i < this.hint) this.hint = i;
  }

  isAllocated(gpa: number): boolean {
    const i = gpa / PAGE_SIZE;
    return Number.isInteger(i) && i >= 0 && i < this.used.length && this.used[i] === 1;
  }
}
