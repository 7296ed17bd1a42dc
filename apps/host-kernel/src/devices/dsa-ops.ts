// What a DSA-like engine does with one descriptor (Intel DSA spec §5 operations): memmove, fill, compare and
// noop, every memory access a device DMA through the IOMMU. Accesses never cross a page of source or destination,
// so a fault leaves every byte of the faulting page untouched and reports where the work stopped.
import { COMPLETION_RECORD_SIZE, CompletionStatus, type Descriptor } from '@app/shared/dsa/descriptor';
import { FAULT_INFO_WRITE, RESULT_COMPARE_MISMATCH, RESULT_MEMMOVE_BACKWARD } from '@app/shared/dsa/dsa.constants';
import { PAGE_SIZE } from '@app/shared/x86/pte';

/** The completion record's contents (DSA completion record: status, result, fault info, bytes completed, fault address). */
export interface Outcome {
  status: number;
  result?: number;
  faultInfo?: number;
  bytesCompleted: number;
  faultAddress?: number;
}

/** One device access through the IOMMU, tagged with the submitter's PASID; a fault is reported (and logged) by the caller. */
export type DeviceDma = (
  address: number,
  length: number,
  write: boolean,
  data: Buffer | undefined,
  stage: AccessStage,
) => { ok: true; data?: Buffer } | { ok: false; address: number };

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

export function runDescriptor(d: Descriptor, dma: DeviceDma): Outcome {
  switch (d.op) {
    case 'noop':
      return { status: CompletionStatus.success, bytesCompleted: 0 };
    case 'memmove':
      return memmove(dma, d);
    case 'fill':
      return fill(dma, d);
    case 'compare':
      return compare(dma, d);
  }
}

/** Chunks never cross a page of src or dst, so a fault leaves every byte of the faulting page untouched. */
function memmove(dma: DeviceDma, d: Descriptor): Outcome {
  // Overlap with dst above src copies from the end (DSA reports the direction in `result`).
  const backward = d.dst > d.src && d.dst < d.src + d.length;
  let done = 0;
  while (done < d.length) {
    const remaining = d.length - done;
    let size: number;
    let srcAt: number;
    let dstAt: number;
    if (!backward) {
      srcAt = d.src + done;
      dstAt = d.dst + done;
      size = Math.min(remaining, PAGE_SIZE - (srcAt % PAGE_SIZE), PAGE_SIZE - (dstAt % PAGE_SIZE));
    } else {
      const srcEnd = d.src + remaining;
      const dstEnd = d.dst + remaining;
      size = Math.min(remaining, ((srcEnd - 1) % PAGE_SIZE) + 1, ((dstEnd - 1) % PAGE_SIZE) + 1);
      srcAt = srcEnd - size;
      dstAt = dstEnd - size;
    }
    const r = dma(srcAt, size, false, undefined, 'source');
    if (!r.ok) return pageFault(r.address, false, done, backward ? RESULT_MEMMOVE_BACKWARD : 0);
    const w = dma(dstAt, size, true, r.data, 'destination');
    if (!w.ok) return pageFault(w.address, true, done, backward ? RESULT_MEMMOVE_BACKWARD : 0);
    done += size;
  }
  return { status: CompletionStatus.success, bytesCompleted: done };
}

function fill(dma: DeviceDma, d: Descriptor): Outcome {
  const pattern = Buffer.alloc(8);
  pattern.writeBigUInt64LE(d.pattern, 0);
  let done = 0;
  while (done < d.length) {
    const at = d.dst + done;
    const size = Math.min(d.length - done, PAGE_SIZE - (at % PAGE_SIZE));
    const chunk = Buffer.alloc(size);
    for (let i = 0; i < size; i++) chunk[i] = pattern[(done + i) % 8];
    const w = dma(at, size, true, chunk, 'destination');
    if (!w.ok) return pageFault(w.address, true, done, 0);
    done += size;
  }
  return { status: CompletionStatus.success, bytesCompleted: done };
}

/** Mismatch: status 3, result 1, bytesCompleted = offset of the first differing byte (DSA semantics). */
function compare(dma: DeviceDma, d: Descriptor): Outcome {
  let done = 0;
  while (done < d.length) {
    const a = d.src + done;
    const b = d.dst + done;
    const size = Math.min(d.length - done, PAGE_SIZE - (a % PAGE_SIZE), PAGE_SIZE - (b % PAGE_SIZE));
    const r1 = dma(a, size, false, undefined, 'source');
    if (!r1.ok) return pageFault(r1.address, false, done, 0);
    const r2 = dma(b, size, false, undefined, 'source');
    if (!r2.ok) return pageFault(r2.address, false, done, 0);
    const x = r1.data as Buffer;
    const y = r2.data as Buffer;
    for (let i = 0; i < size; i++) {
      if (x[i] !== y[i]) return { status: CompletionStatus.compareMismatch, result: RESULT_COMPARE_MISMATCH, bytesCompleted: done + i };
    }
    done += size;
  }
  return { status: CompletionStatus.success, bytesCompleted: done };
}

function pageFault(address: number, write: boolean, done: number, result: number): Outcome {
  return { status: CompletionStatus.pageFault, result, faultInfo: write ? FAULT_INFO_WRITE : 0, bytesCompleted: done, faultAddress: address };
}
