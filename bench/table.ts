import { writeFileSync } from 'node:fs';

/** The floors of one run (issue 13's bench contract), each measured in that run. */
export interface Floors {
  /** bare node:http keep-alive round trip to a server in another process, µs */
  hop: number;
  /** one committed better-sqlite3 WAL insert, µs */
  insert: number;
  /** Buffer.copy of 4 KiB, µs */
  copy4k: number;
  /** Map.set of a small object at 2^20 entries, µs per entry */
  mapset: number;
  /** heap of that Map, bytes per entry */
  mapsetHeap: number;
}

/** One benchmark row: a measured path beside the floor measured in the same run. */
export interface BenchRow {
  /** Stable id (results.json, the table). */
  id: string;
  name: string;
  value: number;
  unit: string;
  /** The floor as an expression of the run's floors (`hop + insert`, `copy4k`…) or of another row. */
  floor: string;
  floorValue: number;
  /** value / floorValue unless the row says otherwise (throughput rows: the other way round). */
  ratio?: number;
  /** Extra columns (throughput, heap, p99…). */
  note?: string;
}

export interface Timing {
  n: number;
  totalMs: number;
  perOpUs: number;
  p50Us: number;
  p99Us: number;
}

/**
 * Times `fn` n times, after running it as many times untimed, and returns per-operation statistics. V8 compiles a
 * request path with its optimising tier only after the path has run for a while: with the earlier 50 untimed calls,
 * the rows timed the apps' code while it was still being compiled, not the path a long fuzz campaign runs.
 */
export async function time(n: number, fn: (i: number) => unknown, warmup = n): Promise<Timing> {
  for (let i = 0; i < warmup; i++) await fn(i);
  const samples = new Float64Array(n);
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await fn(i);
    samples[i] = Number(process.hrtime.bigint() - t0) / 1000;
  }
  const totalMs = Number(process.hrtime.bigint() - start) / 1e6;
  samples.sort();
  return { n, totalMs, perOpUs: (totalMs * 1000) / n, p50Us: samples[Math.floor(n * 0.5)], p99Us: samples[Math.min(n - 1, Math.floor(n * 0.99))] };
}

/**
 * time() of two operations whose ratio is a row: after `n` untimed runs of each, blocks of `block` runs of `a`
 * and of `b` take turns until each has run n times, so both see the same minutes of this shared machine (timed
 * one after the other, their ratio moved by ±25% with the machine's speed between them).
 */
export async function timeInterleaved(n: number, a: (i: number) => unknown, b: (i: number) => unknown, block = 50): Promise<[Timing, Timing]> {
  for (let i = 0; i < n; i++) await a(i);
  for (let i = 0; i < n; i++) await b(i);
  const fns = [a, b];
  const samples = [new Float64Array(n), new Float64Array(n)];
  const totalNs = [0n, 0n];
  for (let done = 0; done < n; done += block) {
    for (let which = 0; which < 2; which++) {
      for (let i = done; i < Math.min(n, done + block); i++) {
        const t0 = process.hrtime.bigint();
        await fns[which](i);
        const ns = process.hrtime.bigint() - t0;
        samples[which][i] = Number(ns) / 1000;
        totalNs[which] += ns;
      }
    }
  }
  return [0, 1].map((which) => {
    const sorted = samples[which].sort();
    const totalMs = Number(totalNs[which]) / 1e6;
    return { n, totalMs, perOpUs: (totalMs * 1000) / n, p50Us: sorted[Math.floor(n * 0.5)], p99Us: sorted[Math.min(n - 1, Math.floor(n * 0.99))] };
  }) as [Timing, Timing];
}

/** Synchronous variant for in-process paths (no await overhead in the measurement). */
export function timeSync(n: number, fn: (i: number) => unknown, warmup = Math.min(100, n)): Timing {
  for (let i = 0; i < warmup; i++) fn(i);
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn(i);
  const totalMs = Number(process.hrtime.bigint() - start) / 1e6;
  const perOpUs = (totalMs * 1000) / n;
  return { n, totalMs, perOpUs, p50Us: perOpUs, p99Us: perOpUs };
}

export const ratioOf = (r: BenchRow): number => r.ratio ?? (r.floorValue > 0 ? r.value / r.floorValue : 0);

const fmt = (v: number): string => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));

export function printTable(floors: Floors, rows: BenchRow[]): void {
  console.log(
    `floors: hop ${fmt(floors.hop)} µs, insert ${fmt(floors.insert)} µs, copy4k ${fmt(floors.copy4k)} µs, ` +
      `mapset ${fmt(floors.mapset)} µs, mapsetHeap ${fmt(floors.mapsetHeap)} B`,
  );
  const header = ['id', 'benchmark', 'value', 'floor (same run)', 'floor value', 'ratio', 'note'];
  const body = rows.map((r) => [r.id, r.name, `${fmt(r.value)} ${r.unit}`, r.floor, fmt(r.floorValue), `${ratioOf(r).toFixed(2)}x`, r.note ?? '']);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  console.log(line(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const b of body) console.log(line(b));
}

/** bench/results.json: `{ floors, rows: [{ id, value, unit, floor, ratio }] }` (issue 13). */
export function writeResults(path: string, floors: Floors, rows: BenchRow[]): void {
  const round = (v: number): number => Math.round(v * 1000) / 1000;
  const out = {
    floors: { hop: round(floors.hop), insert: round(floors.insert), copy4k: round(floors.copy4k), mapset: round(floors.mapset), mapsetHeap: round(floors.mapsetHeap) },
    rows: rows.map((r) => ({ id: r.id, value: round(r.value), unit: r.unit, floor: r.floor, ratio: round(ratioOf(r)) })),
  };
  writeFileSync(path, `${JSON.stringify(out, null, 2)}\n`);
}
