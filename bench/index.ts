// `npm run bench`: the floors, then every row beside its floor from the same run; prints the table and writes
// bench/results.json (issue 13's contract: { floors, rows: [{ id, value, unit, floor, ratio }] }).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { killAll, profileApps } from '../test/harness/apps';
import { Stack } from '../test/harness/stack';
import { measureFloors } from './floors';
import { inProcessStackRows } from './inprocess-stack.bench';
import { inProcessRows } from './inprocess.bench';
import { printProfiles, summarizeProfiles } from './profiles';
import { progress } from './progress';
import { replayRows } from './replay.bench';
import { restNoopRows } from './rest.bench';
import { BENCH_DEVICES, guestBindRows, restCycleRows } from './stack.bench';
import { type BenchRow, printTable, writeResults } from './table';

/** bench/results.json beside the sources (dist/bench/bench/index.js runs four levels down from the root). */
const RESULTS = resolve(__dirname, '..', '..', '..', 'bench', 'results.json');

/**
 * `npm run bench -- --only <prefix>[,<prefix>…]`: the floors and only the stages whose rows start with a prefix
 * (`inproc.memmove4k`, `rest`, `stack`…), for profiling one path; results.json is then not written.
 */
function stageFilter(argv: string[]): ((stage: string) => boolean) | null {
  const i = argv.indexOf('--only');
  if (i < 0) return null;
  const prefixes = (argv[i + 1] ?? '').split(',').filter(Boolean);
  return (stage) => prefixes.some((p) => stage.startsWith(p) || p.startsWith(stage));
}

/**
 * `--profile <dir>`: the spawned apps run with `--cpu-prof` into <dir>, summed up after the table (profiles.ts).
 * Profiling slows what it measures: results.json is then not written.
 */
function profileDir(argv: string[]): string | null {
  const i = argv.indexOf('--profile');
  if (i < 0) return null;
  const dir = argv[i + 1];
  if (!dir || dir.startsWith('--')) throw new Error('--profile needs a directory');
  return resolve(dir);
}

async function main(): Promise<void> {
  const filter = stageFilter(process.argv.slice(2));
  const profiles = profileDir(process.argv.slice(2));
  if (profiles) {
    mkdirSync(profiles, { recursive: true });
    profileApps(profiles);
  }
  const only = filter ?? ((): boolean => true);
  const rows: BenchRow[] = [];
  // The stages, each measured whole; the bar moves between them.
  const bar = progress('bench', 7);
  const { floors, note } = await measureFloors();
  bar.tick();
  // In-process first: no apps running beside it on the shared cores, and its 2^20 ioasids are gone before the stack starts.
  rows.push(...(await inProcessRows(floors, { only })));
  bar.tick();
  if (only('inproc.stack')) rows.push(...(await inProcessStackRows(floors)));
  bar.tick();
  if (only('replay')) rows.push(...(await replayRows()));
  bar.tick();
  if (!only('rest') && !only('stack.')) {
    bar.done();
    console.log(note);
    printTable(floors, rows);
    return;
  }
  const stack = new Stack();
  const dir = mkdtempSync(join(tmpdir(), 'ioasid-bench-devices-'));
  const devices = join(dir, 'devices.json');
  writeFileSync(devices, JSON.stringify(BENCH_DEVICES));
  await stack.startHost({ MEMORY_MIB: '4096', DEVICES: devices });
  await stack.startVmm({ PASID_QUOTA: '1024' });
  try {
    rows.push(...(await restNoopRows(stack, floors, { enqcmd: only('rest.enqcmd') })));
    bar.tick();
    if (only('rest.ioasid-cycle')) rows.push(...(await restCycleRows(stack, floors)));
    bar.tick();
    if (only('stack.')) rows.push(...(await guestBindRows(stack, floors)));
    bar.done();
  } finally {
    await stack.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(note);
  printTable(floors, rows);
  if (profiles) printProfiles(profiles, summarizeProfiles(profiles));
  if (filter || profiles) return;
  writeResults(RESULTS, floors, rows);
  console.log(`wrote ${RESULTS}`);
}

main().catch(async (err: unknown) => {
  console.error(err);
  await killAll();
  process.exit(1);
});
