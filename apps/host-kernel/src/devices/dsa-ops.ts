// What a DSA-like engine does with one descriptor (Intel DSA spec §5 operations): memmove, fill, compare and
// noop, every memory access a device DMA through the IOMMU. Accesses never cross a page of source or destination,
// so a fault leaves every byte of the faulting page untouched and reports where the work stopped.
import type { Descriptor } from '@app/shared/dsa/descriptor';
import { COMPLETION_RECORD_SIZE, CompletionStatus, FAULT_INFO_WRITE, RESULT_COMPARE_MISMATCH, RESULT_MEMMOVE_BACKWARD } from '@app/shared/dsa/dsa.constants';
import { pageOffsetOf } from '@app/shared/x86/page-math';
import { PAGE_SIZE } from '@app/shared/x86/x86.constants';

/** The completion record's contents (DSA completion record: status, result, fault info, bytes completed, fault address). */
export interface Outcome {
  status: number;
  result?: number;
  faultInfo?: number;
  bytesCompleted: number;
  faultAddress?: number;
}

/** Physical memory as the engine moves bytes in it: translated addresses, one frame per call, nothing allocated. */
export interface FrameMemory {
  copy(srcHpa: number, dstHpa: number, n: number): void;
  /** n bytes repeating `pattern` (8 bytes) from its first byte. */
  fill(dstHpa: number, n: number, pattern: Buffer): void;
  /** Offset of the first differing byte, or -1. */
  compare(aHpa: number, bHpa: number, n: number): number;
  writeFrom(hpa: number, src: Buffer, offset: number, n: number): void;
}

/**
 * The device's memory port for one descriptor, tagged with the submitter's PASID: translate() one access inside
 * one page through the IOMMU (its hpa, or -1 after the fault was logged and reported), then move bytes in
 * `memory` at the translated addresses.
 */
export interface DeviceDma {
  translate(address: number, length: number, write: boolean, stage: AccessStage): number;
  readonly memory: FrameMemory;
}

/** Where a device access goes: what a descriptor reads, what it writes, and its completion record. */
export type AccessStage = 'source' | 'destination' | 'completion-record';

/** One page a descriptor touches: the first byte it accesses in that page, and how. */
export interface PageNeed {
  address: number;
  write: boolean;
  stage: AccessStage;
}

/**
 * Every page a descriptor needs, sources first, then destinations, then its completion record: what a
 * block-on-fault descriptor translates before it moves a byte.
 */
export function pagesNeeded(d: Descriptor): PageNeed[] {
  const out: PageNeed[] = [];
  const range = (start: number, length: number, write: boolean, stage: AccessStage): void => {
    for (let at = start; at < start + length; at = (Math.floor(at / PAGE_SIZE) + 1) * PAGE_SIZE) out.push({ address: at, write, stage });
  };
  if (d.op === 'memmove' || d.op === 'compare') range(d.src, d.length, false, 'source');
  if (d.op === 'compare') range(d.dst, d.length, false, 'source');
  if (d.op === 'memmove' || d.op === 'fill') range(d.dst, d.length, true, 'destination');
  if (d.completion !== null) range(d.completion, COMPLETION_RECORD_SIZE, true, 'completion-record');
  return out;
}

/** The completion of a descriptor that ends on a page it could not get: nothing moved, the fault at that page. */
export function unresolvedFault(d: Descriptor, need: PageNeed): Outcome {
  const backward = d.op === 'memmove' && d.dst > d.src && d.dst < d.src + d.length;
  return pageFault(need.address, need.write, 0, backward ? RESULT_MEMMOVE_BACKWARD : 0);
}

/**
 * Runs a descriptor into `out` (the engine's one Outcome, reused), chunk by chunk: each chunk's source and then
 * destination translated, then its bytes moved frame to frame (no intermediate buffer).
 */
export function runDescriptor(d: Descriptor, dma: DeviceDma, out: Outcome): Outcome {
  out.result = 0;
  out.faultInfo = 0;
  out.faultAddress = 0;
  switch (d.op) {
    case 'noop':
      return done(out, 0);
    case 'memmove':
      return memmove(dma, d, out);
    case 'fill':
      return fill(dma, d, out);
    case 'compare':
      return compare(dma, d, out);
  }
}

function done(out: Outcome, bytes: number): Outcome {
  out.status = CompletionStatus.success;
  out.bytesCompleted = bytes;
  return out;
}

/**
 * Chunks never cross a page of src or dst, so a fault leaves every byte of the faulting page untouched. The
 * source is translated before the destination, as the read comes before the write.
 */
function memmove(dma: DeviceDma, d: Descriptor, out: Outcome): Outcome {
  // Overlap with dst above src copies from the end (DSA reports the direction in `result`).
  const backward = d.dst > d.src && d.dst < d.src + d.length;
  const direction = backward ? RESULT_MEMMOVE_BACKWARD : 0;
  let moved = 0;
  while (moved < d.length) {
    const remaining = d.length - moved;
    let size: number;
    let srcAt: number;
    let dstAt: number;
    if (!backward) {
      srcAt = d.src + moved;
      dstAt = d.dst + moved;
      size = Math.min(remaining, PAGE_SIZE - pageOffsetOf(srcAt), PAGE_SIZE - pageOffsetOf(dstAt));
    } else {
      const srcEnd = d.src + remaining;
      const dstEnd = d.dst + remaining;
      size = Math.min(remaining, pageOffsetOf(srcEnd - 1) + 1, pageOffsetOf(dstEnd - 1) + 1);
      srcAt = srcEnd - size;
      dstAt = dstEnd - size;
    }
    const from = dma.translate(srcAt, size, false, 'source');
    if (from < 0) return pageFaultInto(out, srcAt, false, moved, direction);
    const to = dma.translate(dstAt, size, true, 'destination');
    if (to < 0) return pageFaultInto(out, dstAt, true, moved, direction);
    dma.memory.copy(from, to, size);
    moved += size;
  }
  return done(out, moved);
}

/** The 8-byte pattern rotated so that byte 0 is pattern byte `phase` (the fill's offset mod 8). */
const rotated = Buffer.alloc(8);
const patternBytes = Buffer.alloc(16);

function fill(dma: DeviceDma, d: Descriptor, out: Outcome): Outcome {
  patternBytes.writeUInt32LE(d.patternLo, 0);
  patternBytes.writeUInt32LE(d.patternHi, 4);
  patternBytes.copy(patternBytes, 8, 0, 8);
  let filled = 0;
  while (filled < d.length) {
    const at = d.dst + filled;
    const size = Math.min(d.length - filled, PAGE_SIZE - pageOffsetOf(at));
    const to = dma.translate(at, size, true, 'destination');
    if (to < 0) return pageFaultInto(out, at, true, filled, 0);
    const phase = filled % 8;
    patternBytes.copy(rotated, 0, phase, phase + 8);
    dma.memory.fill(to, size, rotated);
    filled += size;
  }
  return done(out, filled);
}

/** Mismatch: status 3, result 1, bytesCompleted = offset of the first differing byte (DSA semantics). */
function compare(dma: DeviceDma, d: Descriptor, out: Outcome): Outcome {
  let compared = 0;
  while (compared < d.length) {
    const a = d.src + compared;
    const b = d.dst + compared;
    const size = Math.min(d.length - compared, PAGE_SIZE - pageOffsetOf(a), PAGE_SIZE - pageOffsetOf(b));
    const x = dma.translate(a, size, false, 'source');
    if (x < 0) return pageFaultInto(out, a, false, compared, 0);
    const y = dma.translate(b, size, false, 'source');
    if (y < 0) return pageFaultInto(out, b, false, compared, 0);
    const differs = dma.memory.compare(x, y, size);
    if (differs >= 0) {
      out.status = CompletionStatus.compareMismatch;
      out.result = RESULT_COMPARE_MISMATCH;
      out.bytesCompleted = compared + differs;
      return out;
    }
    compared += size;
  }
  return done(out, compared);
}

function pageFaultInto(out: Outcome, address: number, write: boolean, bytes: number, result: number): Outcome {
  out.status = CompletionStatus.pageFault;
  out.result = result;
  out.faultInfo = write ? FAULT_INFO_WRITE : 0;
  out.bytesCompleted = bytes;
  out.faultAddress = address;
  return out;
}

function pageFault(address: number, write: boolean, done: number, result: number): Outcome {
  return pageFaultInto({ status: 0, bytesCompleted: 0 }, address, write, done, result);
}
