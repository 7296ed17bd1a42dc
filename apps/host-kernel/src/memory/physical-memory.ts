import { KernelError } from '@app/shared/errno';
import { Tx } from '../fault-injection';
import { IdAllocator } from '../lib/id-allocator';
import { FRAMES_PER_MIB, PAGE_SIZE, pageIndex, pageOffset } from './memory.constants';

/** Pinned frames as [pfn, pin count], by frame number. */
export type PinnedFrames = readonly (readonly [pfn: number, count: number])[];

/** What a frame that was never written holds. */
const ZERO_FRAME = Buffer.alloc(PAGE_SIZE);

/**
 * Offset of the first byte where a[aAt, +n) and b[bAt, +n) differ, or -1: one memcmp for the whole range, then a
 * binary search over memcmps for the first difference (no per-byte loop).
 */
export function firstDifference(a: Buffer, aAt: number, b: Buffer, bAt: number, n: number): number {
  if (a.compare(b, bAt, bAt + n, aAt, aAt + n) === 0) return -1;
  // [0, lo) is equal, [0, hi) is not.
  let lo = 0;
  let hi = n;
  while (hi - lo > 1) {
    const mid = (lo + hi) >>> 1;
    if (a.compare(b, bAt + lo, bAt + mid, aAt + lo, aAt + mid) === 0) lo = mid;
    else hi = mid;
  }
  return lo;
}

/**
 * Frames per section of physical memory: 32 MiB, at or above glibc's largest mmap threshold (32 MiB on 64-bit), so
 * every section is an mmap of its own and sits at the same offset in its first page as every other.
 */
export const SECTION_FRAMES = 8192;

/**
 * Each frame's bytes by frame number, in an array as long as physical memory (8 bytes a frame: 8 MiB for 4 GiB): the
 * data plane looks a frame up at every copy, record and page-table read, and a Map lookup was a tenth of a
 * descriptor. Callers pass a pfn inside memory (their range checks come first).
 *
 * A frame's own bytes are a page of a section, created when a frame in it is first written: frames lie 4 KiB
 * apart as real frames do. A Buffer of its own per frame put two frames wherever malloc did, and on AMD EPYC
 * (FSRM, glibc 2.36) a 4 KiB copy whose destination is 16 bytes past a multiple of 4 KiB from its source runs
 * 15 times slower (2.4 µs against 0.16): which frames a process's descriptors ran between decided their speed
 * (docs/performance.md, seventh pass).
 */
export class FrameBytes {
  private readonly slots: Array<Buffer | undefined>;
  private readonly sections: Array<Buffer | undefined>;

  constructor(frames: number) {
    this.slots = new Array<Buffer | undefined>(frames).fill(undefined);
    this.sections = new Array<Buffer | undefined>(Math.ceil(frames / SECTION_FRAMES)).fill(undefined);
  }

  // `| 0`: a pfn computed from a double address is a double; as an int32 (memory is far below 2^31 frames) the
  // element access is a plain indexed load.
  get(pfn: number): Buffer | undefined {
    return this.slots[pfn | 0];
  }

  /** A frame backed by another's bytes (a memory file's page). */
  set(pfn: number, bytes: Buffer): void {
    this.slots[pfn | 0] = bytes;
  }

  /** The frame's own page of its section, zeroed (a freed frame's page still holds what it held), as its bytes. */
  fresh(pfn: number): Buffer {
    const index = Math.floor(pfn / SECTION_FRAMES);
    // calloc of an mmap: untouched pages cost no memory until written.
    const section = (this.sections[index] ??= Buffer.alloc(SECTION_FRAMES * PAGE_SIZE));
    const at = (pfn - index * SECTION_FRAMES) * PAGE_SIZE;
    const frame = section.subarray(at, at + PAGE_SIZE).fill(0);
    this.slots[pfn | 0] = frame;
    return frame;
  }

  delete(pfn: number): void {
    this.slots[pfn | 0] = undefined;
  }
}

/**
 * Host physical memory: `memoryMiB` of 4 KiB frames. A frame is allocated (counted against the total,
 * ENOMEM beyond) when a process first touches a page; its bytes exist only once written (sparse).
 * pfn 0 is never handed out, so hpa 0 is never a valid translation.
 */
export class PhysicalMemory {
  readonly totalFrames: number;
  /** The end of physical memory (pfn 0 included: it is reserved, never absent). */
  private readonly end: number;
  private readonly frames: IdAllocator;
  private readonly bytes: FrameBytes;
  private readonly pins = new Map<number, number>();
  /** pinnedFrames()'s answer until a pin count changes (most audits see none change: a fuzz step reads it each time). */
  private pinned: PinnedFrames | null = null;

  constructor(memoryMiB: number) {
    if (!Number.isInteger(memoryMiB) || memoryMiB < 1) throw new KernelError('EINVAL', `memoryMiB must be a positive integer, got ${memoryMiB}`);
    this.totalFrames = memoryMiB * FRAMES_PER_MIB;
    this.end = (this.totalFrames + 1) * PAGE_SIZE;
    this.bytes = new FrameBytes(this.totalFrames + 1);
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

  /**
   * Every pinned frame and its pin count, by frame number (for audits and tests). Frozen, so one answer serves
   * every call until a count changes: the same array then, which a caller may compare by identity.
   */
  pinnedFrames(): PinnedFrames {
    return (this.pinned ??= Object.freeze([...this.pins].sort((a, b) => a[0] - b[0]).map((pair) => Object.freeze(pair))));
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
      const frame = this.bytes.get(pageIndex(at)) ?? this.bytes.fresh(pageIndex(at));
      data.copy(frame, pageOffset(at), done, done + n);
      done += n;
    }
  }

  // ---- the device data plane: one frame per call (a descriptor's accesses never cross a page), no allocation ----

  /** Little-endian u32 at hpa (a page-table entry's half: never crosses a frame); never-written bytes read as zero. */
  readU32(hpa: number): number {
    const at = pageOffset(hpa) | 0; // an int32 byte index (a non-integer hpa fails the test below)
    // The walk's every table read: one range test, then bytes (the other cases keep their checks and errors).
    if (!(hpa >= PAGE_SIZE && hpa + 4 <= this.end && at <= PAGE_SIZE - 4 && Number.isSafeInteger(hpa))) return this.readU32Checked(hpa);
    const frame = this.bytes.get((hpa - at) / PAGE_SIZE);
    return frame === undefined ? 0 : (frame[at] | (frame[at + 1] << 8) | (frame[at + 2] << 16)) + frame[at + 3] * 0x100_0000;
  }

  /** readU32 of hpa and hpa + 4 into out[0], out[1]: an 8-byte aligned entry is in one frame, looked up once. */
  readPte(hpa: number, out: Uint32Array): void {
    const at = pageOffset(hpa) | 0; // as readU32
    if (!(hpa >= PAGE_SIZE && hpa + 8 <= this.end && (at & 7) === 0 && Number.isSafeInteger(hpa))) {
      out[0] = this.readU32(hpa);
      out[1] = this.readU32(hpa + 4);
      return;
    }
    const frame = this.bytes.get((hpa - at) / PAGE_SIZE);
    if (frame === undefined) {
      out[0] = 0;
      out[1] = 0;
      return;
    }
    out[0] = (frame[at] | (frame[at + 1] << 8) | (frame[at + 2] << 16)) + frame[at + 3] * 0x100_0000;
    out[1] = (frame[at + 4] | (frame[at + 5] << 8) | (frame[at + 6] << 16)) + frame[at + 7] * 0x100_0000;
  }

  private readU32Checked(hpa: number): number {
    this.checkRange(hpa, 4);
    const frame = this.bytes.get(pageIndex(hpa));
    return frame === undefined ? 0 : frame.readUInt32LE(pageOffset(hpa));
  }

  writeU32(hpa: number, value: number): void {
    this.checkRange(hpa, 4);
    this.frameForWrite(hpa).writeUInt32LE(value >>> 0, pageOffset(hpa));
  }

  /** Frame to frame: n bytes from srcHpa to dstHpa, overlapping or not (memmove). */
  copy(srcHpa: number, dstHpa: number, n: number): void {
    this.checkChunk(srcHpa, n);
    this.checkChunk(dstHpa, n);
    const dst = this.frameForWrite(dstHpa);
    const src = this.bytes.get(pageIndex(srcHpa)) ?? ZERO_FRAME;
    const from = pageOffset(srcHpa);
    // A whole frame is one native TypedArray#set (overlap-safe); a part goes through Buffer#copy's view of it.
    if (n === PAGE_SIZE) dst.set(src, 0);
    else src.copy(dst, pageOffset(dstHpa), from, from + n);
  }

  /** n bytes at dstHpa repeat `pattern` from its first byte (the caller rotates it to the fill's phase). */
  fill(dstHpa: number, n: number, pattern: Buffer): void {
    this.checkChunk(dstHpa, n);
    const at = pageOffset(dstHpa);
    this.frameForWrite(dstHpa).fill(pattern, at, at + n);
  }

  /** Offset of the first byte that differs between [aHpa, +n) and [bHpa, +n), or -1 when they are equal. */
  compare(aHpa: number, bHpa: number, n: number): number {
    this.checkChunk(aHpa, n);
    this.checkChunk(bHpa, n);
    return firstDifference(this.bytes.get(pageIndex(aHpa)) ?? ZERO_FRAME, pageOffset(aHpa), this.bytes.get(pageIndex(bHpa)) ?? ZERO_FRAME, pageOffset(bHpa), n);
  }

  /** n bytes of src from `offset` to hpa (a completion record). */
  writeFrom(hpa: number, src: Buffer, offset: number, n: number): void {
    this.checkChunk(hpa, n);
    const at = pageOffset(hpa);
    if (offset === 0 && n === src.length) this.frameForWrite(hpa).set(src, at);
    else src.copy(this.frameForWrite(hpa), at, offset, offset + n);
  }

  // The hot paths below keep only their tests; what is rare (an error, a first write) is a call of its own, so
  // they stay small enough for V8 to inline into the engine (its inlining budget counts bytecode).

  /** The bytes of an allocated frame, created on first write (a free frame → EFAULT, as write()). */
  private frameForWrite(hpa: number): Buffer {
    const pfn = pageIndex(hpa);
    const frame = this.frames.isUsed(pfn) ? this.bytes.get(pfn) : undefined;
    return frame ?? this.firstWrite(pfn);
  }

  /** A frame's bytes on its first write (EFAULT for a free frame, as write()). */
  private firstWrite(pfn: number): Buffer {
    if (!this.frames.isUsed(pfn)) throw new KernelError('EFAULT', `hpa ${pfn * PAGE_SIZE} is in a free frame`);
    return this.bytes.fresh(pfn);
  }

  /** A range inside physical memory and inside one frame. */
  private checkChunk(hpa: number, n: number): void {
    // One test for the data plane's every access; any failure takes chunkError, which names the error.
    if (!(hpa >= PAGE_SIZE && n >= 0 && hpa + n <= this.end && pageOffset(hpa) + n <= PAGE_SIZE && Number.isSafeInteger(hpa) && Number.isSafeInteger(n))) this.chunkError(hpa, n);
  }

  private chunkError(hpa: number, n: number): void {
    this.checkRange(hpa, n);
    if (pageOffset(hpa) + n > PAGE_SIZE) throw new RangeError(`[${hpa}, +${n}) crosses a frame`);
  }

  private addPin(pfn: number, delta: number): void {
    const count = this.pinCount(pfn) + delta;
    if (count < 0) throw new RangeError(`frame ${pfn} unpinned more than pinned`);
    if (count === 0) this.pins.delete(pfn);
    else this.pins.set(pfn, count);
    this.pinned = null;
  }

  private checkRange(hpa: number, length: number): void {
    const end = this.end;
    if (!Number.isSafeInteger(hpa) || !Number.isSafeInteger(length) || hpa < PAGE_SIZE || length < 0 || hpa + length > end) {
      throw new KernelError('EFAULT', `hpa range [${hpa}, +${length}) is outside physical memory`);
    }
  }
}
