// The memmove rows as the median of several fresh processes. One process's row is one draw of V8's compile
// order: which of the data plane's functions its concurrent compiler optimises first decides what is inlined
// where, and the same code then runs 0.6 or 1.1 µs per descriptor in that process from its first block to its
// last (docs/performance.md). Each process times its own blocks and its own copy4k in turns with them
// (memmove.bench.ts); the row is the process of median ratio, and its note lists every process's value and floor
// so the spread stays visible.
import { fork } from 'node:child_process';
import { join } from 'node:path';
import type { BenchRow, Floors } from './table';

/** Fresh processes per run; odd, so the median is one process's row. */
export const MEMMOVE_PROCESSES = 5;

export async function memmoveRowsAcrossProcesses(floors: Floors, descriptors: number, processes = MEMMOVE_PROCESSES): Promise<BenchRow[]> {
  const runs: BenchRow[][] = [];
  // One after another: two at once would share the two cores with each other.
  for (let i = 0; i < processes; i++) runs.push(await memmoveInChild(floors.copy4k, descriptors));
  return runs[0].map((first, r) => {
    const same = runs.map((run) => {
      if (run[r]?.id !== first.id) throw new Error(`memmove processes disagree on row ${r}: ${first.id} vs ${run[r]?.id}`);
      return run[r];
    });
    // Each process divides its rows by the copy4k it timed in turns with them: the row is the median ratio.
    const sorted = [...same].sort((a, b) => a.value / a.floorValue - b.value / b.floorValue);
    const median = sorted[Math.floor(processes / 2)];
    const values = same.map((row) => `${row.value.toFixed(2)}/${row.floorValue.toFixed(3)}`).join(', ');
    return { ...median, note: `median ratio of ${processes} fresh processes (µs/copy4k µs: ${values}, in run order); that process: ${median.note ?? ''}` };
  });
}

/** memmove.child.js in a process of its own, with this one's node flags (--expose-gc, the alias hook). */
function memmoveInChild(copy4k: number, descriptors: number): Promise<BenchRow[]> {
  return new Promise((resolve, reject) => {
    const child = fork(join(__dirname, 'memmove.child.js'), [JSON.stringify({ copy4k, descriptors })], { execArgv: process.execArgv });
    let rows: BenchRow[] | null = null;
    child.once('message', (message) => (rows = message as BenchRow[]));
    child.once('error', reject);
    child.once('exit', (code, signal) => (code === 0 && rows ? resolve(rows) : reject(new Error(`memmove child exited (${code ?? signal}) without its rows`))));
  });
}
