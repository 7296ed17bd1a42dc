import type { Descriptor as DescriptorJson } from '@app/shared/contract/host-kernel';
import { decodeCompletion, encodeCompletionScratch, encodeDescriptorInto, newDescriptor } from '@app/shared/dsa/descriptor';
import { decodeDescriptorWordsInto, descriptorWords } from '@app/shared/dsa/descriptor-decode';
import { COMPLETION_RECORD_SIZE, CompletionStatus, DESCRIPTOR_SIZE } from '@app/shared/dsa/dsa.constants';
import { PAGE_SIZE } from '@app/shared/x86/pte';
import { WQ_MAX_TRANSFER_SIZE } from '../apps/host-kernel/src/devices/devices.constants';
import type { TestKernel } from '../apps/host-kernel/src/kernel.testing';
import { BENCH_DSA, benchKernel, GVA_DONE, GVA_DST, GVA_SRC, hostSvaWorld, memmove4k, type NestedWorld, nestedWorld, pattern } from './inprocess.setup';
import { copy4kFloor } from './floors';
import { type BenchRow, timeSync } from './table';

// The ENQCMD memmove rows of 4 KiB, run synchronously on a stalled engine: submit + translate + copy +
// completion record, and beside them the hit row's own work without the layers (workAlone). One process's rows;
// memmove.processes.ts runs them in several fresh processes.

interface MemmovePath {
  /** One 4 KiB memmove, done: on the kernel's rows an ENQCMD of the descriptor (must be accepted), then the engine's step. */
  run(): void;
  /** Completion record and destination bytes after the last descriptor. */
  record(): Buffer;
  dst(): Buffer;
  /** Zeroes the destination page and the completion record, so the check after one more descriptor proves that one. */
  reset(): void;
}

/**
 * The memmove rows of this process: n descriptors per block (the miss rows half as many), each against the copy4k
 * this process times in turns with the row's blocks (`copy4k` is the run's, measured at its start: in the notes).
 */
export function memmoveRows(copy4k: number, n: number): BenchRow[] {
  const floor = copy4k;
  const rows: BenchRow[] = [];
  const k = benchKernel();
  const w = nestedWorld(k);
  const payload = pattern(PAGE_SIZE, 3);
  k.writeGuestMemory(w.pid, w.vm, w.src, payload);
  // The guest's descriptor, built once (what a caller pays to build its JSON is not the kernel's; nothing keeps it).
  const guestDescriptor = memmove4k(GVA_SRC, GVA_DST, GVA_DONE);
  const engine = k.accelerators.accelerator(BENCH_DSA);
  const nested: MemmovePath = {
    run: () => {
      if (k.vcpuEnqcmd(w.pid, w.vm, 0, w.dev, guestDescriptor).result !== 'accepted') throw new Error('nested ENQCMD not accepted');
      if (!engine.step()) throw new Error('engine had nothing to run');
    },
    record: () => k.readGuestMemory(w.pid, w.vm, w.done, 32),
    dst: () => k.readGuestMemory(w.pid, w.vm, w.dst, PAGE_SIZE),
    reset: () => {
      k.writeGuestMemory(w.pid, w.vm, w.dst, Buffer.alloc(PAGE_SIZE));
      k.writeGuestMemory(w.pid, w.vm, w.done, Buffer.alloc(32));
    },
  };
  rows.push(memmoveRow(k, nested, payload, n, floor, 'inproc.memmove4k.hit', 'memmove 4 KiB, nested (guest SVA), IOTLB hit', null));
  rows.push(memmoveRow(k, { ...nested, run: workAlone(k, w, guestDescriptor) }, payload, n, floor, 'inproc.memmove4k.work', "the hit row's own work alone, no layers (not a kernel path)", null));
  const flushInvUs = timeSync(n, () => k.invalidate(w.pid, w.fd, w.ppasid)).perOpUs;
  rows.push(
    memmoveRow(k, nested, payload, Math.ceil(n / 2), floor, 'inproc.memmove4k.miss1d', 'memmove 4 KiB, nested, IOTLB miss (INVALIDATE nested)', {
      flush: () => k.invalidate(w.pid, w.fd, w.ppasid),
      flushUs: flushInvUs,
      what: 'first stage re-walked, table reads hit the parent IOTLB',
    }),
  );
  rows.push(
    memmoveRow(k, nested, payload, Math.ceil(n / 2), floor, 'inproc.memmove4k.miss2d', 'memmove 4 KiB, nested, full 2-D miss (INVALIDATE parent)', {
      flush: () => k.invalidate(w.pid, w.fd, w.gpa),
      what: 'parent + nested flushed: every table read walks the second stage too',
      apart: true,
    }),
  );

  // VFIO devices are opened exclusively: the host SVA process gets a kernel of its own.
  const k2 = benchKernel();
  const h = hostSvaWorld(k2);
  k2.writeMemory(h.pid, h.buf, payload);
  const hostDescriptor = memmove4k(h.buf, h.buf + PAGE_SIZE, h.buf + 2 * PAGE_SIZE);
  const engine2 = k2.accelerators.accelerator(BENCH_DSA);
  const sva: MemmovePath = {
    run: () => {
      if (k2.enqcmd(h.pid, h.dev, hostDescriptor).result !== 'accepted') throw new Error('host SVA ENQCMD not accepted');
      if (!engine2.step()) throw new Error('engine had nothing to run');
    },
    record: () => k2.readMemory(h.pid, h.buf + 2 * PAGE_SIZE, 32),
    dst: () => k2.readMemory(h.pid, h.buf + PAGE_SIZE, PAGE_SIZE),
    reset: () => {
      k2.writeMemory(h.pid, h.buf + PAGE_SIZE, Buffer.alloc(PAGE_SIZE));
      k2.writeMemory(h.pid, h.buf + 2 * PAGE_SIZE, Buffer.alloc(32));
    },
  };
  rows.splice(1, 0, memmoveRow(k2, sva, payload, n, floor, 'inproc.memmove4k.sva', 'memmove 4 KiB, host SVA (mm), IOTLB hit', null));
  for (const kernel of [k, k2]) if (kernel.faults().length !== 0) throw new Error(`memmove benchmarks faulted: ${JSON.stringify(kernel.faults()[0])}`);
  return rows;
}

/**
 * The hit row's own work and nothing else: the kernel's own descriptor encoder and decoder, IOMMU (route, IOTLB),
 * frames and completion-record encoder, called one after another from this one function. Left out are the layers
 * the row's descriptor goes through: the call's permit and fd checks and its transaction, the vCPU's IA32_PASID and
 * PASID translation, the portal, the work queue and the engine's dispatch. It is not a path of the kernel and no
 * goal: it says what the hit row would cost if every layer cost nothing (docs/performance.md, twelfth pass).
 */
function workAlone(k: TestKernel, w: NestedWorld, json: DescriptorJson): () => void {
  const memory = k.memory;
  const iommu = k.iommu;
  const portal = Buffer.alloc(DESCRIPTOR_SIZE);
  const slot = Buffer.alloc(DESCRIPTOR_SIZE);
  const words = descriptorWords(slot);
  const d = newDescriptor();
  const ppasid = w.ppasid;
  return () => {
    encodeDescriptorInto(json, portal, ppasid, false);
    slot.set(portal);
    if (decodeDescriptorWordsInto(words, WQ_MAX_TRANSFER_SIZE, d) !== null || d.completion === null) throw new Error('the memmove descriptor does not decode');
    const src = iommu.translatePage(BENCH_DSA, ppasid, d.src, false, false);
    const dst = iommu.translatePage(BENCH_DSA, ppasid, d.dst, true, false);
    if (src < 0 || dst < 0) throw new Error('the memmove faulted');
    memory.copy(src, dst, d.length);
    const record = iommu.translatePage(BENCH_DSA, ppasid, d.completion, true, false);
    if (record < 0) throw new Error('the completion record faulted');
    memory.writeFrom(record, encodeCompletionScratch(CompletionStatus.success, 0, 0, d.length, 0), 0, COMPLETION_RECORD_SIZE);
  };
}

/**
 * Time (not descriptors) each memmove row runs untimed before its blocks (see memmoveRow), and the blocks it
 * times: the row's value is the median block.
 */
const MEMMOVE_WARMUP_MS = 250;
const MEMMOVE_BLOCKS = 5;
/** Buffer.copy calls of each copy4k block between two blocks of descriptors (about 20–30 ms). */
const COPIES_PER_BLOCK = 100_000;

function memmoveRow(
  k: TestKernel,
  path: MemmovePath,
  payload: Buffer,
  n: number,
  floor: number,
  id: string,
  name: string,
  /**
   * flushUs: the flush alone, measured before (the note of a row that includes it); apart: the flush before each
   * descriptor is timed on its own in the row's loop and left out of the value.
   */
  miss: { flush: () => void; what: string } & ({ flushUs: number; apart?: false } | { apart: true }) | null,
): BenchRow {
  const descriptor = path.run;
  const one = (): void => {
    miss?.flush();
    descriptor();
  };
  // Warm-up: V8 optimises the engine's functions after about 2,000 descriptors and the calling side (the row, the
  // portal, the permit check) after 3,000–6,000; with 1,000 the first timed thousands ran unoptimised and the row
  // measured the compiler. After 20,000, some processes still ran their next 200,000 descriptors 1.5–2× slower
  // than the ones after, while V8 recompiled (docs/performance.md), so each row now warms for a quarter second
  // (about 250,000 hits or 60,000 2-D misses). It also fills the IOTLB for the hit row.
  const warmUntil = performance.now() + MEMMOVE_WARMUP_MS;
  while (performance.now() < warmUntil) for (let i = 0; i < 1000; i++) one();
  // Then MEMMOVE_BLOCKS blocks of n descriptors, the median block as the value: one block is one draw of this
  // shared machine's speed.
  const before = k.iommu.iotlb.stats;
  // The floor takes turns with the blocks, in this process: a block of copies after each block of descriptors.
  const blocks: Array<{ perOpUs: number; beforeUs: number }> = [];
  const copies: number[] = [];
  for (let b = 0; b < MEMMOVE_BLOCKS; b++) {
    blocks.push(miss?.apart ? timeApart(n, miss.flush, descriptor) : { ...timeSync(n, one, 0), beforeUs: 0 });
    copies.push(copy4kFloor(COPIES_PER_BLOCK).perOpUs);
  }
  const after = k.iommu.iotlb.stats;
  const sorted = [...blocks].sort((a, b) => a.perOpUs - b.perOpUs);
  const t = sorted[Math.floor(MEMMOVE_BLOCKS / 2)];
  const copy4k = copies.sort((a, b) => a - b)[Math.floor(MEMMOVE_BLOCKS / 2)];
  const spread = `median of ${MEMMOVE_BLOCKS} blocks of ${n} (${sorted[0].perOpUs.toFixed(2)}–${sorted[MEMMOVE_BLOCKS - 1].perOpUs.toFixed(2)} µs)`;
  const missesPerDesc = (after.misses - before.misses) / (n * MEMMOVE_BLOCKS);
  if (miss ? missesPerDesc < 3 : missesPerDesc !== 0) throw new Error(`${name}: ${missesPerDesc} IOTLB misses per descriptor`);
  path.reset();
  if (path.dst().equals(payload)) throw new Error(`${name}: the destination was not cleared`);
  one();
  const rec = decodeCompletion(path.record());
  if (rec.status !== CompletionStatus.success || rec.bytesCompleted !== PAGE_SIZE || !path.dst().equals(payload)) {
    throw new Error(`${name}: completion ${rec.statusName} (${rec.bytesCompleted} bytes), dst ${path.dst().equals(payload) ? 'ok' : 'wrong'}`);
  }
  const rate = (us: number): string => `${(1e6 / us / 1000).toFixed(1)}k desc/s, ${(PAGE_SIZE / us / 1000).toFixed(3)} GB/s`;
  const flush = !miss
    ? ''
    : miss.apart
      ? `; INVALIDATE timed apart, not in the value: ${t.beforeUs.toFixed(2)} µs before each descriptor (${miss.what})`
      : `; incl. INVALIDATE ${miss.flushUs.toFixed(2)} µs (${miss.what})`;
  return {
    id,
    name,
    value: t.perOpUs,
    unit: 'µs/desc',
    floor: 'copy4k (in turns)',
    floorValue: copy4k,
    note:
      `${spread}; copy4k in turns: median of ${MEMMOVE_BLOCKS} blocks ${copy4k.toFixed(3)} µs (${copies[0].toFixed(3)}–${copies[MEMMOVE_BLOCKS - 1].toFixed(3)}), ` +
      `at the run's start ${floor.toFixed(3)} µs (ratio ${(t.perOpUs / floor).toFixed(2)}); ${rate(t.perOpUs)} vs copy ${(PAGE_SIZE / copy4k / 1000).toFixed(2)} GB/s; ` +
      `${missesPerDesc.toFixed(1)} IOTLB misses/desc${flush}`,
  };
}

/**
 * n rounds of `before` then `timed`, only `timed` in the value (µs per round); `before` is timed too (beforeUs).
 * performance.now() reads the clock without allocating; the value includes one clock read per round.
 */
function timeApart(n: number, before: () => void, timed: () => void): { perOpUs: number; beforeUs: number } {
  let timedMs = 0;
  let beforeMs = 0;
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    before();
    const t1 = performance.now();
    timed();
    const t2 = performance.now();
    beforeMs += t1 - t0;
    timedMs += t2 - t1;
  }
  return { perOpUs: (timedMs * 1000) / n, beforeUs: (beforeMs * 1000) / n };
}
