import { KernelError } from '@app/shared/errno';
import { PASID_POOL_SIZE } from '../apps/host-kernel/src/ioasid/ioasid.constants';
import type { TestKernel } from '../apps/host-kernel/src/kernel.testing';
import { BENCH_DSA, benchKernel } from './inprocess.setup';
import { heapUsed } from './floors';
import { memmoveRowsAcrossProcesses } from './memmove.processes';
import { type BenchRow, type Floors, timeSync } from './table';

/**
 * The host kernel domain driven directly (no HTTP, no Nest): ioasid allocation to exhaustion, the
 * alloc → bind → allow → disallow → destroy cycle, and ENQCMD memmoves run synchronously on a stalled engine
 * (submit + step() = translate + copy + completion record; memmove.bench.ts, each row the median of several fresh
 * processes: memmove.processes.ts), each beside a floor measured in this run.
 */
export async function inProcessRows(floors: Floors, opts: { cycles?: number; descriptors?: number; only?: (stage: string) => boolean } = {}): Promise<BenchRow[]> {
  const cycles = opts.cycles ?? 100_000;
  const descriptors = opts.descriptors ?? 40_000;
  const only = opts.only ?? (() => true);
  return [
    ...(only('inproc.alloc') ? allocAllRows(floors) : []),
    ...(only('inproc.ioasid-cycle') ? [cycleRow(cycles)] : []),
    ...(only('inproc.memmove4k') ? await memmoveRowsAcrossProcesses(floors, descriptors) : []),
  ];
}

const elapsedUs = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1000;

// ---- 1. all 2^20 − 1 ioasids of one ioasid fd ----

function allocAllRows(floors: Floors): BenchRow[] {
  const total = PASID_POOL_SIZE; // 2^20 − 1: PASID 0 is RID_PASID, never handed out

  // One process holding every PASID: PASID_LIMIT (4096 by default) raised to the whole pool.
  let k: TestKernel | null = benchKernel(16, { pasids: total });
  const { pid } = k.createProcess('bench/alloc-all');
  const fd = k.openIoasid(pid);
  const heap0 = heapUsed();
  let last = 0;
  let t0 = process.hrtime.bigint();
  for (let i = 0; i < total; i++) last = k.alloc(pid, fd);
  const allocUs = elapsedUs(t0);
  const heapBytes = (heapUsed() - heap0) / total;
  let errno: string | undefined;
  try {
    k.alloc(pid, fd);
  } catch (err) {
    if (!(err instanceof KernelError)) throw err;
    errno = err.errno;
  }
  const pool = k.pasidPool();
  if (errno !== 'ENOSPC' || last !== total || pool.allocated !== total || pool.free !== 0) {
    throw new Error(`alloc-all: last id ${last}, pool ${JSON.stringify(pool)}, alloc #${total + 1} → ${errno ?? 'success'} (expected ENOSPC)`);
  }
  // Releasing them all is one close(fd): it must cost about what allocating them did, per ioasid.
  t0 = process.hrtime.bigint();
  k.closeFd(pid, fd);
  const releaseUs = elapsedUs(t0);
  const after = k.pasidPool();
  if (after.free !== total || after.allocated !== 0 || after.parked !== 0) throw new Error(`release-all left ${JSON.stringify(after)}`);
  k = null;
  heapUsed(); // give the 2^20 ioasids back before the next section

  return [
    {
      id: 'inproc.alloc',
      name: `alloc all 2^20−1 ioasids (the ALLOC row, no journal)`,
      value: allocUs / total,
      unit: 'µs/ioasid',
      floor: 'mapset',
      floorValue: floors.mapset,
      note: `${total} allocs in ${(allocUs / 1e6).toFixed(2)} s; alloc #2^20 → ENOSPC, pool ${pool.allocated} allocated / ${pool.free} free`,
    },
    {
      id: 'inproc.release',
      name: `release all 2^20−1 ioasids (one close of their fd, no journal)`,
      value: releaseUs / total,
      unit: 'µs/ioasid',
      floor: 'inproc.alloc',
      floorValue: allocUs / total,
      note: `${total} released in ${(releaseUs / 1e6).toFixed(2)} s (allocated in ${(allocUs / 1e6).toFixed(2)} s); pool all free`,
    },
    {
      id: 'heap.ioasid',
      name: 'heap per ioasid (2^20−1 live)',
      value: heapBytes,
      unit: 'B/ioasid',
      floor: 'mapsetHeap',
      floorValue: floors.mapsetHeap,
      note: `heapUsed delta after global.gc(): ${((heapBytes * total) / 2 ** 20).toFixed(0)} MiB vs ${((floors.mapsetHeap * total) / 2 ** 20).toFixed(0)} MiB`,
    },
  ];
}

// ---- 2. the control-plane life cycle of one ioasid ----

function cycleRow(n: number): BenchRow {
  const k = benchKernel();
  const { pid } = k.createProcess('bench/cycle');
  const fd = k.openIoasid(pid);
  const dev = k.openDevice(pid, BENCH_DSA);
  let changed = true;
  const cycle = (): void => {
    const id = k.alloc(pid, fd);
    k.bindPgtbl(pid, fd, id, { kind: 'iova' });
    k.allowIoasid(pid, dev, { ioasidFd: fd, ioasid: id, mode: 'pasid' });
    changed = k.disallowIoasid(pid, dev, { ioasidFd: fd, ioasid: id }).changed && changed;
    k.destroy(pid, fd, id);
  };
  const t = timeSync(n, cycle);
  const pool = k.pasidPool();
  if (!changed || pool.allocated !== 0 || pool.parked !== 0 || k.list(pid, fd).length !== 0 || k.snapshot().routes.length !== 0) {
    throw new Error(`cycle left state behind: changed ${changed}, pool ${JSON.stringify(pool)}, routes ${k.snapshot().routes.length}`);
  }
  // Floor: the five objects the cycle creates and drops (ioasid, page table, route, holder, attachment), as
  // Map set/delete pairs of a small object: the bookkeeping with none of the checks or the undo log.
  const m = new Map<number, { id: number; step: number }>();
  const floor = timeSync(n, (i) => {
    for (let step = 0; step < 5; step++) {
      m.set(step, { id: i, step });
      m.delete(step);
    }
  });
  return {
    id: 'inproc.ioasid-cycle',
    name: 'alloc → bind(iova) → allow(pasid) → disallow → destroy (kernel, no journal)',
    value: t.perOpUs,
    unit: 'µs/cycle',
    floor: '5 Map set/delete pairs',
    floorValue: floor.perOpUs,
    note: `${n} cycles, ${(1e6 / t.perOpUs).toFixed(0)} cycles/s; pool empty after`,
  };
}
