// `npm run replay -- <recording-dir> [--in-process]` (DESIGN §9), with time travel
// (`--until <journal>:<seq> --state`, `--until A --diff B`, `--watch <path>`) and `--export <data-dir> <recording-dir>`.
// Exit 0: no divergence; 1: a divergence; 2: a recording it cannot read (or bad arguments).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SingleBar } from 'cli-progress';
import { parseDevices } from '../apps/host-kernel/src/config';
import { exportDataDir } from './export';
import { readRecording, type Recording, RecordingError, type StackConfig } from './recording';
import { renderReport } from './report';
import { refName, replay, type RowRef } from './replayer';
import { diffStates, parseStatePath, type StatePath, StatePathError } from './state';
import { watchValue } from './watch';

const USAGE = `usage:
  npm run replay -- <recording-dir> [--in-process] [--invariants (on by itself for a fuzzer's recording)] [--devices <file.json>] [--quota <n>] [--seed <n>]
  npm run replay -- <recording-dir> --until <journal>:<seq> --state
  npm run replay -- <recording-dir> --until <journal>:<seq> --diff <journal>:<seq>
  npm run replay -- <recording-dir> --watch <path>   (host.pool.parked, host.ioasids[id=5].state, vmm.vms[id=1].shadow)
  npm run replay -- --export <data-dir> <recording-dir>
journals: host-kernel, vmm, guest-<vm> (or guest when there is one), operator`;

class UsageError extends Error {}

interface Args {
  positional: string[];
  flags: Map<string, string | true>;
}

function parseArgs(argv: string[]): Args {
  const flags = new Map<string, string | true>();
  const positional: string[] = [];
  const valued = new Set(['--until', '--diff', '--watch', '--devices', '--quota', '--seed']);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (valued.has(a)) {
      if (argv[i + 1] === undefined) throw new UsageError(`${a} needs a value`);
      flags.set(a, argv[++i]);
    } else if (a.startsWith('--')) flags.set(a, true);
    else positional.push(a);
  }
  return { positional, flags };
}

/** `host-kernel:57`, `guest-1:9`, or `guest:9` when the recording has one guest. */
export function parseRef(text: string, rec: Recording): RowRef {
  const m = /^([a-z0-9-]+):(\d+)$/.exec(text);
  if (!m) throw new UsageError(`"${text}" is not <journal>:<seq>`);
  let journal = m[1];
  if (journal === 'guest') {
    const guests = [...rec.journals.keys()].filter((j) => j.startsWith('guest-'));
    if (guests.length !== 1) throw new UsageError(`"guest" is ambiguous here: say one of ${guests.join(', ') || '(no guest journal)'}`);
    journal = guests[0];
  }
  const rows = rec.journals.get(journal);
  if (!rows) throw new UsageError(`the recording has no journal ${journal} (it has ${[...rec.journals.keys()].join(', ')})`);
  const seq = Number(m[2]);
  if (!rows.some((r) => r.seq === seq)) throw new UsageError(`${journal} has no row ${seq} (rows ${rows[0]?.seq ?? 0}..${rows.at(-1)?.seq ?? 0})`);
  return { journal, seq };
}

function overrides(flags: Args['flags']): Partial<StackConfig> {
  const out: Partial<StackConfig> = {};
  const devices = flags.get('--devices');
  if (typeof devices === 'string') out.devices = parseDevices(JSON.parse(readFileSync(devices, 'utf8')), devices);
  const quota = flags.get('--quota');
  if (typeof quota === 'string') out.pasidQuota = Number(quota);
  const seed = flags.get('--seed');
  if (typeof seed === 'string') out.seed = Number(seed);
  return out;
}

async function main(argv: string[]): Promise<number> {
  const { positional, flags } = parseArgs(argv);
  if (flags.has('--help') || flags.has('-h')) return (console.log(USAGE), 0);
  if (flags.has('--export')) {
    if (positional.length !== 2) throw new UsageError('--export takes <data-dir> <recording-dir>');
    const r = exportDataDir(positional[0], positional[1], overrides(flags));
    console.log(`exported ${r.rows} rows of ${r.journals.join(', ')} to ${positional[1]}`);
    return 0;
  }
  if (positional.length !== 1) throw new UsageError('give one recording directory');
  const rec = readRecording(positional[0]);
  const watched = flags.get('--watch');
  if (typeof watched === 'string') {
    let path: StatePath;
    try {
      path = parseStatePath(watched);
    } catch (err) {
      throw err instanceof StatePathError ? new UsageError(err.message) : err;
    }
    const { result, initial, changes } = await watchValue(rec, path, overrides(flags));
    if (result.divergence) {
      console.log(renderReport(rec, result));
      return 1;
    }
    // initial is left out where the path led nowhere at the start, as before/after are in a change.
    console.log(JSON.stringify({ watch: path.text, inputs: result.inputs, ...(initial === undefined ? {} : { initial }), changes }, null, 2));
    return 0;
  }
  const until = flags.get('--until');
  if (typeof until === 'string') {
    const from = parseRef(until, rec);
    const diff = flags.get('--diff');
    const to = typeof diff === 'string' ? parseRef(diff, rec) : null;
    if (!to && !flags.has('--state')) throw new UsageError('--until needs --state or --diff <journal>:<seq>');
    // Time travel replays in process: the object graph is at hand there, between two commits.
    const result = await replay(rec, { inProcess: true, override: overrides(flags), watch: to ? [from, to] : [from] });
    if (result.divergence) {
      console.log(renderReport(rec, result));
      return 1;
    }
    const a = result.states.get(refName(from));
    if (!to) console.log(JSON.stringify({ at: refName(from), ...a }, null, 2));
    else console.log(JSON.stringify({ from: refName(from), to: refName(to), changes: diffStates(a, result.states.get(refName(to))) }, null, 2));
    return 0;
  }
  const bar = process.stderr.isTTY ? new SingleBar({ format: 'replay [{bar}] {value}/{total} inputs', stream: process.stderr, hideCursor: true }) : null;
  bar?.start(rec.rows.filter((r) => r.input).length, 0);
  const result = await replay(rec, { inProcess: flags.has('--in-process'), invariants: flags.has('--invariants') || existsSync(join(positional[0], 'violation.json')), override: overrides(flags), onProgress: (done) => bar?.update(done) }).finally(() => bar?.stop());
  console.log(renderReport(rec, result));
  return result.divergence || result.violation ? 1 : 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      if (err instanceof RecordingError || err instanceof UsageError) {
        console.error(err.message);
        if (err instanceof UsageError) console.error(USAGE);
        process.exit(2);
      }
      console.error(err);
      process.exit(3);
    },
  );
}

export { main as replayMain };
