// `npm run fuzz -- --seed N --ops K [--in-process] [--tenants T] [--out DIR] [--strict] [--minimize-seconds S]`:
// a campaign (fuzzer.ts) with a progress bar and its summary (report.ts). At the first violation it writes the
// minimized scenario and its recording under DIR (default out/fuzz/seed-N) and exits 1; a clean run exits 0.
import { SingleBar } from 'cli-progress';
import { join } from 'node:path';
import { fuzz } from './fuzzer';
import { summaryText, writeArtifacts } from './report';

const USAGE = 'usage: npm run fuzz -- --seed <n> --ops <k> [--in-process] [--tenants <t>] [--out <dir>] [--strict] [--minimize-seconds <s>]';

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
  const ops = flag(argv, '--ops', 1000);
  const tenants = flag(argv, '--tenants', 4);
  const inProcess = argv.includes('--in-process');
  const outAt = argv.indexOf('--out');
  const outDir = outAt >= 0 ? argv[outAt + 1] : join('out', 'fuzz', `seed-${seed}`);
  const bar = new SingleBar({ format: 'fuzz [{bar}] {value}/{total} ops | {rate} ops/s | {checks} checks', stream: process.stderr, hideCursor: true, noTTYOutput: true, notTTYSchedule: 5000 });
  const t0 = Date.now();
  bar.start(ops, 0, { rate: '0', checks: 0 });
  const r = await fuzz({
    seed,
    ops,
    inProcess,
    tenants,
    strict: argv.includes('--strict'),
    onOp: (done, checks) => bar.update(done, { checks, rate: (done / Math.max((Date.now() - t0) / 1000, 0.001)).toFixed(1) }),
  }).finally(() => bar.stop());
  console.log(summaryText(r, { inProcess, tenants }));
  if (!r.violations.length) return 0;
  console.log('\nVIOLATION after the last operation:');
  for (const v of r.violations) console.log(`  ${v.check} (${v.group}): ${v.message}`);
  console.log(`  operation ${r.ops.length}: ${r.ops.at(-1)?.name} by ${r.ops.at(-1)?.tenant}`);
  console.log(`minimizing (at most ${flag(argv, '--minimize-seconds', inProcess ? 60 : 180)} s)…`);
  const a = await writeArtifacts(r, { outDir, inProcess, budgetMs: flag(argv, '--minimize-seconds', inProcess ? 60 : 180) * 1000 });
  const how = inProcess ? ' --in-process' : '';
  console.log(`scenario  ${a.scenario}: ${a.kept} of ${a.of} operations (${a.trials} runs${a.minimal ? ', 1-minimal' : a.reproduced ? ', budget spent: shorter, maybe not minimal' : ', did not violate again on a fresh stack'})`);
  console.log(`  npm run scenario -- ${a.scenario}${how}`);
  if (a.recording) console.log(`recording ${a.recording}\n  npm run replay -- ${a.recording}${how}`);
  return 1;
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
