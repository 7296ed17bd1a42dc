// `npm run fuzz -- --seed N --ops K [--in-process] [--tenants T] [--out DIR] [--strict] [--minimize-seconds S]
// [--runs R] [--for SECONDS] [--jobs J]`: a run (fuzzer.ts) with a progress bar and its summary (report.ts). At the
// first violation it writes the minimized scenario and its recording under DIR (default out/fuzz/seed-N) and exits
// 1; a clean run exits 0. With --runs or --for it is a campaign (campaign.ts): seeds N, N+1, … each K operations on a
// fresh stack, until R runs are done or the time is up (a run started in time finishes), or one violates; --jobs J
// runs J of them at once, each on a worker thread.
import { SingleBar } from 'cli-progress';
import { join } from 'node:path';
import { runCampaign, runReport, type RunOptions } from './campaign';
import { coverageLines } from './report';

const USAGE =
  'usage: npm run fuzz -- --seed <n> --ops <k> [--in-process] [--tenants <t>] [--out <dir>] [--strict] [--minimize-seconds <s>] [--runs <r>] [--for <seconds>] [--jobs <j>]';

function flag(argv: string[], name: string, dflt: number): number {
  const at = argv.indexOf(name);
  if (at < 0) return dflt;
  const v = Number(argv[at + 1]);
  if (!Number.isSafeInteger(v) || v < 0) throw new Error(`${name} takes a non-negative integer, got ${argv[at + 1]}`);
  return v;
}

async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help')) {
    console.log(USAGE);
    return 0;
  }
  const seed = flag(argv, '--seed', 1);
  const inProcess = argv.includes('--in-process');
  const outAt = argv.indexOf('--out');
  const o: RunOptions = {
    ops: flag(argv, '--ops', 1000),
    tenants: flag(argv, '--tenants', 4),
    inProcess,
    strict: argv.includes('--strict'),
    outDir: (s) => (outAt >= 0 ? argv[outAt + 1] : join('out', 'fuzz', `seed-${s}`)),
    minimizeSeconds: flag(argv, '--minimize-seconds', inProcess ? 60 : 180),
  };
  if (!argv.includes('--runs') && !argv.includes('--for')) {
    if (argv.includes('--jobs')) throw new Error('--jobs runs the seeds of a campaign at once: give --runs <r> or --for <seconds> too');
    const bar = new SingleBar({ format: 'fuzz [{bar}] {value}/{total} ops | {rate} ops/s | {checks} checks', stream: process.stderr, hideCursor: true, noTTYOutput: true, notTTYSchedule: 5000 });
    const t0 = Date.now();
    bar.start(o.ops, 0, { rate: '0', checks: 0 });
    const r = await runReport(seed, o, (done, checks) => bar.update(done, { checks, rate: (done / Math.max((Date.now() - t0) / 1000, 0.001)).toFixed(1) })).finally(() => bar.stop());
    // A clean run prints its summary (the report's line is the campaign's); a violating one, summary and artifacts.
    console.log(r.violations ? r.lines.slice(1).join('\n') : r.summary);
    return r.violations ? 1 : 0;
  }
  const jobs = Math.max(1, flag(argv, '--jobs', 1));
  const until = argv.includes('--for') ? Date.now() + flag(argv, '--for', 0) * 1000 : Infinity;
  const t = await runCampaign(seed, flag(argv, '--runs', Number.MAX_SAFE_INTEGER), until, jobs, o, (l) => console.log(l), join(__dirname, 'worker.js'));
  const secs = t.ms / 1000;
  const seeds = [...t.seeds].sort((a, b) => a - b);
  console.log(
    [
      `fuzz campaign, seeds ${seeds[0]}–${seeds.at(-1)} ${inProcess ? 'in-process' : 'multi-process (REST)'}, ${o.tenants} tenants, ${o.ops} operations each${jobs > 1 ? `, ${jobs} at once` : ''}`,
      `  runs              ${t.runs}`,
      `  operations        ${t.ops} (${t.steps} steps) in ${secs.toFixed(1)} s = ${(t.ops / Math.max(secs, 0.001)).toFixed(1)} ops/s`,
      `  invariant checks  ${t.checks}`,
      `  violations        ${t.violations}`,
      `  5xx               ${t.fiveXX}`,
      `  leaks             ${t.leaks}`,
      ...coverageLines(t.coverage),
    ].join('\n'),
  );
  return t.violations ? 1 : 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(err instanceof Error ? err.message : err);
      process.exit(2);
    },
  );
}

export { main as fuzzMain };
