// Replay (DESIGN §9): a fresh stack, every input of the recording re-issued in order, each after the previous
// one's effects are journaled everywhere (quiesce), and each journal's rows compared in order with the
// recording's. The first divergence stops it. Time travel rides on the in-process replay: the stack's state is
// captured right after the commit that wrote a chosen row.
import type { JournalEvent } from '@app/shared/journal/journal';
import { InvariantMonitor, sourceFor, type Violation } from './invariants';
import { formatTraceparent, newSpanId } from '@app/shared/trace';
import { differences, type Divergence } from './compare';
import { InProcessTransport } from './in-process-transport';
import { Operator } from './operator';
import type { RecordedRow, Recording, StackConfig } from './recording';
import { toRecorded } from './recording';
import { RestTransport } from './rest-transport';
import { type StackState, stackState } from './state';
import type { Transport } from './transport';
import type { InProcessStack } from '../stack/in-process-stack';

export interface RowRef {
  journal: string;
  seq: number;
}

export interface ReplayOptions {
  inProcess: boolean;
  /** Changes to the recording's stack (a behaviour change under review: another device, another quota). */
  override?: Partial<StackConfig>;
  onProgress?: (inputsDone: number, inputs: number) => void;
  /** Time travel: capture the stack's state right after each of these rows is written (in-process only). */
  watch?: RowRef[];
  /**
   * Time travel: told right after every commit of every journal, with the commit's first row (the call's: its seq
   * and operation) and the stack as the commit left it (in process).
   */
  afterCommit?: (journal: string, first: { seq: number; operation: string }, stack: InProcessStack) => void;
  /** Told once the fresh stack has started and gone quiet, before the first input (in process: with the stack). */
  afterStart?: (stack: InProcessStack | null) => void;
  /** Check the invariants of DESIGN §11 after every input (replay/invariants); the first violation stops the replay. */
  invariants?: boolean;
}

export interface ReplayResult {
  inputs: number;
  compared: number;
  divergence: Divergence | null;
  /** The replayed rows, by journal. */
  replayed: Map<string, RecordedRow[]>;
  states: Map<string, StackState>;
  /** With `invariants`: what the checks found after input `inputIndex` (-1: the stack as it started), else null. */
  violation: { inputIndex: number; input: RecordedRow | null; violations: Violation[] } | null;
  /** Milliseconds the fresh stack took to start and go quiet, before the first input (spawning three apps over REST). */
  startMs: number;
}

export const refName = (r: RowRef): string => `${r.journal}:${r.seq}`;

export async function replay(rec: Recording, opts: ReplayOptions): Promise<ReplayResult> {
  const config = { ...rec.config, ...opts.override };
  const inputs = rec.rows.filter((r) => r.input);
  const states = new Map<string, StackState>();
  const watch = opts.watch ?? [];
  let transport: Transport;
  const afterCommit = opts.afterCommit;
  if (watch.length || afterCommit) {
    const t: InProcessTransport = new InProcessTransport(config, (journal, last, first) => {
      for (const w of watch) {
        if (w.journal !== journal || last < w.seq || states.has(refName(w))) continue;
        states.set(refName(w), stackState(t.stack)); // placeholder, replaced once the commit has finished
        queueMicrotask(() => states.set(refName(w), stackState(t.stack)));
      }
      if (afterCommit) queueMicrotask(() => afterCommit(journal, first, t.stack));
    });
    transport = t;
  } else transport = opts.inProcess ? new InProcessTransport(config) : new RestTransport(config);
  const operator = new Operator(transport);
  const replayed = new Map<string, RecordedRow[]>();
  let compared = 0;
  let divergence: Divergence | null = null;

  /** Compares the rows journaled since the last look; the earliest (causally) mismatch of any journal. */
  const check = async (k: number): Promise<Divergence | null> => {
    const fresh = await transport.newRows();
    let first: Divergence | null = null;
    for (const [journal, rows] of fresh) {
      const mine = replayed.get(journal) ?? [];
      replayed.set(journal, mine);
      const recorded = rec.journals.get(journal) ?? [];
      for (const e of rows) {
        const got = toRecorded(journal, e as JournalEvent);
        const want = recorded[mine.length] ?? null;
        mine.push(got);
        const fields = want ? differences(want, got) : ['operation'];
        if (fields.length === 0) {
          compared++;
          continue;
        }
        const d: Divergence = { journal, seq: want?.seq ?? got.seq, recorded: want, replayed: got, fields, inputIndex: k, input: inputs[k] ?? null };
        if (!first || (want?.logical ?? got.logical) < (first.recorded?.logical ?? first.replayed?.logical ?? Infinity)) first = d;
        break;
      }
    }
    return first;
  };

  let violation: ReplayResult['violation'] = null;
  let startMs = 0;
  try {
    const t0 = performance.now();
    await transport.start();
    await transport.quiesce();
    startMs = performance.now() - t0;
    opts.afterStart?.(transport instanceof InProcessTransport ? transport.stack : null);
    divergence = await check(-1);
    // The checks read the state directly (in process) or after the stack went quiet (REST): they move no clock.
    const monitor = opts.invariants ? new InvariantMonitor(sourceFor(transport)) : null;
    const observe = async (k: number): Promise<void> => {
      const found = monitor ? await monitor.observe(k < 0 ? null : { label: `input ${k + 1}`, calls: [], event: inputs[k]?.request?.kind !== 'http' }) : [];
      if (found.length) violation = { inputIndex: k, input: inputs[k] ?? null, violations: found };
    };
    if (monitor && !divergence) await observe(-1);
    let issued = 0;
    while (issued < inputs.length && !divergence && !violation) {
      await issue(transport, operator, inputs[issued]);
      issued++;
      await transport.quiesce();
      divergence = await check(issued - 1);
      if (!divergence) await observe(issued - 1);
      opts.onProgress?.(issued, inputs.length);
      if (watch.length && watch.every((w) => states.has(refName(w)))) break;
    }
    if (!divergence && !violation && issued === inputs.length) divergence = missing(rec, replayed, inputs);
    return { inputs: issued, compared, divergence, replayed, states, violation, startMs };
  } finally {
    await transport.close();
  }
}

/** Re-issues one recorded input, with the trace it had (so recorded and replayed rows share trace ids). */
async function issue(transport: Transport, operator: Operator, row: RecordedRow): Promise<void> {
  const req = row.request;
  if (!req) throw new Error(`${row.journal}:${row.seq} is an input without its request`);
  const traceparent = formatTraceparent(row.trace, row.parent ?? newSpanId());
  switch (req.kind) {
    case 'http':
      await operator.http(req, { traceparent, background: row.journal === 'operator' });
      return;
    case 'boot':
      await operator.boot(req.vm as number, traceparent, req.pageRequests);
      return;
    case 'kill':
      await transport.kill(req.app as 'vmm' | 'guest', req.vm);
      return;
    case 'restart':
      await transport.restart('vmm');
      return;
    case 'advance':
      await transport.advance(req.ms ?? 0);
  }
}

/** The first recorded row replay never produced, if any (earliest in causal order). */
function missing(rec: Recording, replayed: Map<string, RecordedRow[]>, inputs: RecordedRow[]): Divergence | null {
  const position = new Map(rec.rows.map((r, i) => [r, i]));
  const firsts = [...rec.journals].map(([j, rows]) => rows[replayed.get(j)?.length ?? 0]).filter((r): r is RecordedRow => r !== undefined);
  const left = firsts.sort((a, b) => (position.get(a) as number) - (position.get(b) as number))[0];
  if (!left) return null;
  // The input that led to it: the one whose trace it is in, else the last input before it in causal order.
  let at = inputs.findIndex((i) => i.trace === left.trace);
  if (at < 0) at = inputs.reduce((best, i, n) => ((position.get(i) as number) < (position.get(left) as number) ? n : best), -1);
  return { journal: left.journal, seq: left.seq, recorded: left, replayed: null, fields: ['operation'], inputIndex: at, input: inputs[at] ?? null };
}
