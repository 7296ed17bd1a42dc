// `npm run fuzz -- --seed N --ops K [--in-process] [--tenants T] [--out DIR] [--strict] [--minimize-seconds S]
// [--runs R] [--for SECONDS]`: a campaign (fuzzer.ts) with a progress bar and its summary (report.ts). At the first
// violation it writes the minimized scenario and its recording under DIR (default out/fuzz/seed-N) and exits 1; a
// clean run exits 0. With --runs or --for it runs seeds N, N+1, … one after the other, each K operations on a fresh
// stack, until R runs are done or the time is up (a run started in time finishes), or one violates.
import { SingleBar } from 'cli-progress';
import { join } from 'node:path';
import { Coverage } from './coverage';
import { fuzz, type FuzzOutcome } from './fuzzer';
import { coverageLines, summaryText, writeArtifacts } from './report';

const USAGE =
  'usage: npm run fuzz -- --seed <n> --ops <k> [--in-process] [--tenants <t>] [--out <dir>] [--strict] [--minimize-seconds <s>] [--runs <r>] [--for <seconds>]';

function flag(argv: string[], name: string, dflt: number): number {
  const at = argv.indexOf(name);
  if (at < 0) return dflt;
  const v = Number(argv[at + 1]);
  if (!Number.isSafeInteger(v) || v < 0) throw new Error(`${name} takes a non-negative integer, got ${argv[at + 1]}`);
  return v;
}

interface Options {
  ops: number;
  tenants: number;
  inProcess: boolean;
  strict: boolean;
}

/** One run of `seed`, with its progress bar. */
async function runSeed(seed: number, o: Options): Promise<FuzzOutcome> {
  const bar = new SingleBar({ format: `fuzz seed ${seed} [{bar}] {value}/{total} ops | {rate} ops/s | {checks} checks`, stream: process.stderr, hideCursor: true, noTTYOutput: true, notTTYSchedule: 5000 });
  const t0 = Date.now();
  bar.start(o.ops, 0, { rate: '0', checks: 0 });
  return fuzz({
    seed,
    ops: o.ops,
    inProcess: o.inProcess,
    tenants: o.tenants,
    strict: o.strict,
    onOp: (done, checks) => bar.update(done, { checks, rate: (done / Math.max((Date.now() - t0) / 1000, 0.001)).toFixed(1) }),
  }).finally(() => bar.stop());
}

/** The violation, then the minimized scenario and its recording. */
async function reportViolation(r: FuzzOutcome, argv: string[], outDir: string, inProcess: boolean): Promise<void> {
  console.log('\nVIOLATION after the last operation:');
  for (const v of r.violations) console.log(`  ${v.check} (${v.group}): ${v.message}`);
  console.log(`  operation ${r.ops.length}: ${r.ops.at(-1)?.name} by ${r.ops.at(-1)?.tenant}`);
  const budget = flag(argv, '--minimize-seconds', inProcess ? 60 : 180);
  console.log(`minimizing (at most ${budget} s)…`);
  const a = await writeArtifacts(r, { outDir, inProcess, budgetMs: budget * 1000 });
  const how = inProcess ? ' --in-process' : '';
  console.log(`scenario  ${a.scenario}: ${a.kept} of ${a.of} operations (${a.trials} runs${a.minimal ? ', 1-minimal' : a.reproduced ? ', budget spent: shorter, maybe not minimal' : ', did not violate again on a fresh stack'})`);
  console.log(`  npm run scenario -- ${a.scenario}${how}`);
  if (a.recording) console.log(`recording ${a.recording}\n  npm run replay -- ${a.recording}${how}`);
}

async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help')) {
    console.log(USAGE);
    return 0;
  }
  const seed = flag(argv, '--seed', 1);
  const o: Options = { ops: flag(argv, '--ops', 1000), tenants: flag(argv, '--tenants', 4), inProcess: argv.includes('--in-process'), strict: argv.includes('--strict') };
  const outAt = argv.indexOf('--out');
  const outDir = (s: number): string => (outAt >= 0 ? argv[outAt + 1] : join('out', 'fuzz', `seed-${s}`));
  const campaign = argv.includes('--runs') || argv.includes('--for');
  if (!campaign) {
    const r = await runSeed(seed, o);
    console.log(summaryText(r, o));
    if (!r.violations.length) return 0;
    await reportViolation(r, argv, outDir(seed), o.inProcess);
    return 1;
  }
  // One fresh stack per seed: a run keeps every operation (the minimizer replays them) and every journal, so one
  // run of hours would grow without bound; a campaign of bounded runs keeps only their counts.
  const runs = flag(argv, '--runs', Number.MAX_SAFE_INTEGER);
  const until = argv.includes('--for') ? Date.now() + flag(argv, '--for', 0) * 1000 : Infinity;
  const coverage = new Coverage();
  const t = { runs: 0, ops: 0, steps: 0, checks: 0, leaks: 0, fiveXX: 0, ms: 0 };
  for (let s = seed; t.runs < runs && (t.runs === 0 || Date.now() < until); s++) {
    const r = await runSeed(s, o);
    const checks = r.run.session.monitor?.checksRun ?? 0;
    t.runs++;
    t.ops += r.ops.length;
    t.steps += r.run.steps;
    t.checks += checks;
    t.leaks += r.violations.length ? 0 : r.leaks;
    t.fiveXX += r.run.fiveXX;
    t.ms += r.elapsedMs;
    coverage.merge(r.coverage);
    const secs = r.elapsedMs / 1000;
    console.log(`seed ${s}: ${r.ops.length} operations (${r.run.steps} steps) in ${secs.toFixed(1)} s = ${(r.ops.length / Math.max(secs, 0.001)).toFixed(1)} ops/s, ${checks} checks, ${r.violations.length} violations, ${r.run.fiveXX} 5xx, ${r.violations.length ? 'leaks not checked' : `${r.leaks} leaks`}`);
    if (r.violations.length) {
      console.log(summaryText(r, o));
      await reportViolation(r, argv, outDir(s), o.inProcess);
      return 1;
    }
  }
  const secs = t.ms / 1000;
  console.log(
    [
      `fuzz campaign, seeds ${seed}–${seed + t.runs - 1} ${o.inProcess ? 'in-process' : 'multi-process (REST)'}, ${o.tenants} tenants, ${o.ops} operations each`,
      `  runs              ${t.runs}`,
      `  operations        ${t.ops} (${t.steps} steps) in ${secs.toFixed(1)} s = ${(t.ops / Math.max(secs, 0.001)).toFixed(1)} ops/s`,
      `  invariant checks  ${t.checks}`,
      `  violations        0`,
      `  5xx               ${t.fiveXX}`,
      `  leaks             ${t.leaks}`,
      ...coverageLines(coverage),
    ].join('\n'),
  );
  return 0;
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
