// A campaign of several runs (`--runs`, `--for`, `--jobs`): seeds N, N+1, … each a run of its own on a fresh stack,
// in this thread or on worker threads (worker.ts), one at a time per thread. A run keeps every operation (the
// minimizer re-runs them) and every journal, so it grows with its length; a campaign keeps only each run's counts.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { Coverage } from './coverage';
import { fuzz, type FuzzOutcome } from './fuzzer';
import { summaryText, writeArtifacts } from './report';

export interface RunOptions {
  ops: number;
  tenants: number;
  inProcess: boolean;
  strict: boolean;
  /** Where a violating seed's artifacts go, and the minimizer's budget. */
  outDir: (seed: number) => string;
  minimizeSeconds: number;
}

/** What a run counts, and a campaign adds up. */
interface RunCounts {
  ops: number;
  steps: number;
  checks: number;
  violations: number;
  fiveXX: number;
  leaks: number;
}
const COUNTS: ReadonlyArray<keyof RunCounts> = ['ops', 'steps', 'checks', 'violations', 'fiveXX', 'leaks'];

/** What a run of a campaign tells it (plain data: it crosses from a worker thread by structured clone). */
export interface RunReport extends RunCounts {
  seed: number;
  elapsedMs: number;
  coverage: Pick<Coverage, 'contract' | 'repertoire'>;
  /** The lines to print for it: one, or that one, the summary and the violation with its artifacts. */
  lines: string[];
  /** The run's whole summary (what a single run prints). */
  summary: string;
}

/** The violation, then the minimized scenario and its recording, as lines. */
export async function violationLines(r: FuzzOutcome, o: Pick<RunOptions, 'inProcess' | 'minimizeSeconds'>, outDir: string): Promise<string[]> {
  const lines = ['', 'VIOLATION after the last operation:'];
  for (const v of r.violations) lines.push(`  ${v.check} (${v.group}): ${v.message}`);
  lines.push(`  operation ${r.ops.length}: ${r.ops.at(-1)?.name} by ${r.ops.at(-1)?.tenant}`, `minimizing (at most ${o.minimizeSeconds} s)…`);
  const a = await writeArtifacts(r, { outDir, inProcess: o.inProcess, budgetMs: o.minimizeSeconds * 1000 });
  const how = o.inProcess ? ' --in-process' : '';
  lines.push(`scenario  ${a.scenario}: ${a.kept} of ${a.of} operations (${a.trials} runs${a.minimal ? ', 1-minimal' : a.reproduced ? ', budget spent: shorter, maybe not minimal' : ', did not violate again on a fresh stack'})`);
  lines.push(`  npm run scenario -- ${a.scenario}${how}`);
  if (a.recording) lines.push(`recording ${a.recording}`, `  npm run replay -- ${a.recording}${how}`);
  return lines;
}

/** Runs `seed` and reports it (its artifacts written at a violation). */
export async function runReport(seed: number, o: RunOptions, onOp?: (done: number, checks: number) => void): Promise<RunReport> {
  const r = await fuzz({ seed, ops: o.ops, inProcess: o.inProcess, tenants: o.tenants, strict: o.strict, onOp });
  const checks = r.run.session.monitor?.checksRun ?? 0;
  const secs = r.elapsedMs / 1000;
  const v = r.violations.length;
  const line = `seed ${seed}: ${r.ops.length} operations (${r.run.steps} steps) in ${secs.toFixed(1)} s = ${(r.ops.length / Math.max(secs, 0.001)).toFixed(1)} ops/s, ${checks} checks, ${v} violations, ${r.run.fiveXX} 5xx, ${v ? 'leaks not checked' : `${r.leaks} leaks`}`;
  const summary = summaryText(r, o);
  const lines = v ? [line, summary, ...(await violationLines(r, o, o.outDir(seed)))] : [line];
  return {
    seed,
    ops: r.ops.length,
    steps: r.run.steps,
    checks,
    violations: v,
    fiveXX: r.run.fiveXX,
    leaks: v ? 0 : r.leaks,
    elapsedMs: r.elapsedMs,
    coverage: { contract: r.coverage.contract, repertoire: r.coverage.repertoire },
    lines,
    summary,
  };
}

export interface CampaignTotals extends RunCounts {
  runs: number;
  /** Wall time of the whole campaign. */
  ms: number;
  coverage: Coverage;
  /** The seeds run, in the order they finished. */
  seeds: number[];
}

/**
 * Seeds `first`, first + 1, … until `runs` are done or `until` (ms since the epoch) has passed (a run started in
 * time finishes; the first always starts), or a run violates: then no new run starts and those running finish.
 * With `jobs` > 1 each run goes to a worker thread of its own (`workerEntry`: the compiled worker.js).
 */
export async function runCampaign(first: number, runs: number, until: number, jobs: number, o: RunOptions, print: (line: string) => void, workerEntry?: string): Promise<CampaignTotals> {
  const t: CampaignTotals = { runs: 0, ops: 0, steps: 0, checks: 0, violations: 0, fiveXX: 0, leaks: 0, ms: 0, coverage: new Coverage(), seeds: [] };
  const t0 = Date.now();
  let next = first;
  const more = (): boolean => t.violations === 0 && next - first < runs && (next === first || Date.now() < until);
  const take = (r: RunReport): void => {
    t.runs++;
    for (const k of COUNTS) t[k] += r[k];
    t.coverage.merge(r.coverage);
    t.seeds.push(r.seed);
    for (const l of r.lines) print(l);
  };
  if (jobs <= 1) {
    while (more()) take(await runReport(next++, o));
  } else {
    const entry = workerEntry ?? '';
    if (!existsSync(entry)) throw new Error(`--jobs needs the compiled tools (npm run fuzz builds them): no ${entry}`);
    // Each worker loads the `@app/shared` alias first, as `node -r replay/register.js` does for this thread.
    const register = join(__dirname, '..', '..', '..', 'replay', 'register.js');
    const code = `require(${JSON.stringify(register)}); require(${JSON.stringify(entry)});`;
    await Promise.all(
      Array.from({ length: jobs }, async () => {
        while (more()) {
          const seed = next++;
          take(await inWorker(code, seed, o));
        }
      }),
    );
  }
  t.ms = Date.now() - t0;
  return t;
}

/** One run on a worker thread of its own (its stack, its modules, its heap), which ends with it. */
function inWorker(code: string, seed: number, o: RunOptions): Promise<RunReport> {
  const { outDir, ...rest } = o;
  const worker = new Worker(code, { eval: true, workerData: { seed, o: rest, outDir: outDir(seed) } });
  return new Promise<RunReport>((resolve, reject) => {
    worker.once('message', (r: RunReport) => {
      resolve(r);
      // Its run has closed its stack; whatever timer is left there ends with the thread.
      void worker.terminate();
    });
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`the worker of seed ${seed} exited with ${code} before it reported`)));
  });
}
