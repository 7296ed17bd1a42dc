// `npm run scenario -- <file> [--in-process]` (DESIGN §9): runs a scenario's steps on a fresh stack, checks its
// expectations, writes the run's recording (recording.jsonl, the journals' databases, config.json) and one
// Mermaid diagram per trace, then replays the recording on another fresh stack of the same kind: any
// divergence fails the run.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SeededStream } from '@app/shared/replay/seeded';
import { readJournalFile } from '../databases';
import { InProcessTransport } from '../in-process-transport';
import { Operator } from '../operator';
import { readRecording, type RecordedRow, toRecorded, writeRecording } from '../recording';
import { renderReport, traceDiagram } from '../report';
import { replay, type ReplayResult } from '../replayer';
import { RestTransport } from '../rest-transport';
import type { StackResponse, Transport } from '../transport';
import { type Scenario, type Step } from './parse';
import { matches, resolve, runStep, type StepContext, StepFailure } from './steps';

export interface ScenarioResult {
  scenario: Scenario;
  outDir: string;
  steps: number;
  /** The first failed step or expectation (null: all held). */
  failure: string | null;
  recording: RecordedRow[];
  traces: string[];
  replay: ReplayResult | null;
  report: string;
}

export async function runScenario(scenario: Scenario, opts: { inProcess: boolean; outDir: string; replay?: boolean }): Promise<ScenarioResult> {
  const transport: Transport = opts.inProcess ? new InProcessTransport(scenario.config) : new RestTransport(scenario.config);
  const operator = new Operator(transport);
  const ctx: StepContext = { transport, operator, traces: new SeededStream(scenario.config.seed ?? 0, `scenario/${scenario.name}`), vars: new Map(), rows: new Map() };
  rmSync(opts.outDir, { recursive: true, force: true });
  mkdirSync(join(opts.outDir, 'traces'), { recursive: true });
  let failure: string | null = null;
  let done = 0;
  try {
    await transport.start();
    await transport.quiesce();
    let last: StackResponse = { status: 200, body: null };
    for (const step of scenario.steps) {
      const where = `${scenario.file} line ${step.line} (${step.kind})`;
      try {
        if (step.kind !== 'expect') {
          last = await runStep(ctx, step);
          if (!step.background) await transport.quiesce();
          if (step.as) ctx.vars.set(step.as, last.body);
        }
        const problem = await check(ctx, step, last);
        if (problem) throw new StepFailure(problem);
      } catch (err) {
        failure = `${where}: ${(err as Error).message}`;
        break;
      }
      done++;
    }
    await transport.saveDatabases(opts.outDir);
  } finally {
    await transport.close();
  }
  const journals = new Map<string, RecordedRow[]>();
  for (const name of ['operator', 'host-kernel', 'vmm', ...guestJournals(ctx)]) {
    const file = join(opts.outDir, `${name}.db`);
    journals.set(name, readJournalFile(file).map((e) => toRecorded(name, e)));
  }
  const recording = writeRecording(opts.outDir, journals, scenario.config);
  const traces = writeTraces(opts.outDir, recording);
  let replayed: ReplayResult | null = null;
  let report = failure ?? '';
  if (!failure && opts.replay !== false) {
    const rec = readRecording(opts.outDir);
    replayed = await replay(rec, { inProcess: opts.inProcess });
    report = renderReport(rec, replayed);
    if (replayed.divergence) failure = `the recording does not replay: ${report}`;
  }
  return { scenario, outDir: opts.outDir, steps: done, failure, recording, traces, replay: replayed, report };
}

function guestJournals(ctx: StepContext): string[] {
  const t = ctx.transport;
  const names = t instanceof InProcessTransport ? [...t.stack.streams().keys()] : [...(t as RestTransport).journalNames()];
  return names.filter((n) => n.startsWith('guest-'));
}

/** A step's expectations: on its own answer (result, errno, status), and on the stack (bytes, pool, pasid). */
async function check(ctx: StepContext, step: Step, res: StackResponse): Promise<string | null> {
  const e = step.expect ? (resolve(step.expect, ctx.vars) as Record<string, unknown>) : null;
  const errno = (res.body as { errno?: string } | null)?.errno;
  if (!e) return res.status >= 300 && step.kind !== 'expect' ? `answered ${res.status} ${errno ?? ''}: ${(res.body as { message?: string } | null)?.message ?? JSON.stringify(res.body)}` : null;
  if (e.errno !== undefined && errno !== e.errno) return `expected errno ${String(e.errno)}, got ${res.status} ${errno ?? '(success)'}`;
  if (e.errno === undefined && e.status === undefined && res.status >= 300 && step.kind !== 'expect') return `answered ${res.status} ${errno ?? ''}`;
  if (e.status !== undefined && res.status !== e.status) return `expected status ${String(e.status)}, got ${res.status}`;
  if (e.result !== undefined) {
    const m = matches(res.body, e.result);
    if (m) return `result ${m}`;
  }
  if (e.bytes !== undefined) {
    const b = e.bytes as { vm: number; pid: number; gva: number; length: number; pattern?: number; data?: string };
    const r = await ctx.transport.request({ app: 'guest', vm: b.vm, method: 'GET', path: `/v1/processes/${b.pid}/memory?gva=${b.gva}&length=${b.length}` });
    const got = Buffer.from((r.body as { data?: string }).data ?? '', 'base64');
    const want = b.data !== undefined ? Buffer.from(b.data, 'base64') : Buffer.alloc(b.length, b.pattern ?? 0);
    if (!got.equals(want)) return `bytes at gva 0x${b.gva.toString(16)}: ${got.length} bytes differ from the expected ${want.length}`;
  }
  if (e.pool !== undefined) {
    const r = await ctx.transport.request({ app: 'host-kernel', method: 'GET', path: '/v1/hw/pasids', token: ctx.operator.tokenOf('host-kernel', 'admin') });
    const m = matches(r.body, e.pool);
    if (m) return `PASID pool ${m}`;
  }
  if (e.pasid !== undefined) {
    const p = e.pasid as { pasid: number };
    const r = await ctx.transport.request({ app: 'host-kernel', method: 'GET', path: `/v1/hw/pasids?pasid=${p.pasid}`, token: ctx.operator.tokenOf('host-kernel', 'admin') });
    const m = matches(r.body, p);
    if (m) return `host PASID ${p.pasid}: ${m}`;
  }
  return null;
}

/** One Mermaid file per trace, in the order the traces started: `traces/NN-<first operation>.mmd`. */
function writeTraces(dir: string, rows: RecordedRow[]): string[] {
  const order: string[] = [];
  for (const r of rows) if (!order.includes(r.trace)) order.push(r.trace);
  return order.map((trace, i) => {
    const first = rows.find((r) => r.trace === trace && r.input) ?? rows.find((r) => r.trace === trace);
    const name = `${String(i + 1).padStart(2, '0')}-${(first?.operation ?? 'trace').replace(/[^a-z0-9_.-]/gi, '_')}.mmd`;
    writeFileSync(join(dir, 'traces', name), traceDiagram(rows, trace, `${first?.journal ?? ''} ${first?.operation ?? ''} (trace ${trace})`));
    return name;
  });
}
