/** One benchmark row: a measured path beside the floor measured in the same run. */
export interface BenchRow {
  name: string;
  value: number;
  unit: string;
  floorName: string;
  floor: number;
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

/** Times `fn` n times (after a warm-up) and returns per-operation statistics. */
export async function time(n: number, fn: (i: number) => unknown, warmup = Math.min(50, n)): Promise<Timing> {
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

/** Synchronous variant for in-process paths (no await overhead in the measurement). */
export function timeSync(n: number, fn: (i: number) => unknown, warmup = Math.min(100, n)): Timing {
  for (let i = 0; i < warmup; i++) fn(i);
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn(i);
  const totalMs = Number(process.hrtime.bigint() - start) / 1e6;
  const perOpUs = (totalMs * 1000) / n;
  return { n, totalMs, perOpUs, p50Us: perOpUs, p99Us: perOpUs };
}

export function printTable(rows: BenchRow[]): void {
  const fmt = (v: number): string => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
  const header = ['benchmark', 'value', 'floor (same run)', 'floor value', 'x floor', 'note'];
  const body = rows.map((r) => [r.name, `${fmt(r.value)} ${r.unit}`, r.floorName, `${fmt(r.floor)} ${r.unit}`, r.floor > 0 ? `${(r.value / r.floor).toFixed(1)}x` : '-', r.note ?? '']);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  console.log(line(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const b of body) console.log(line(b));
}
