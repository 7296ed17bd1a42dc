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
import { readRecording, type RecordedRow, type StackConfig, toRecorded, writeRecording } from '../recording';
import { renderReport, traceDiagram } from '../report';
import { replay, type ReplayResult } from '../replayer';
import { RestTransport } from '../rest-transport';
import type { Transport } from '../transport';
import { type Scenario } from './parse';
import { ScenarioSession } from './session';
import { type StepContext, StepFailure } from './steps';

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
    // Invariant expectations watch the whole run: the checks run after every step that leaves the stack quiet.
    const session = await ScenarioSession.open(ctx, scenario.steps.some((s) => s.expect?.invariants !== undefined));
    for (const step of scenario.steps) {
      const where = `${scenario.file} line ${step.line} (${step.kind})`;
      try {
        const problem = (await session.step(step)).problem;
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
  const recording = writeRunRecording(ctx, opts.outDir, scenario.config);
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

/** After `transport.saveDatabases(dir)`: the run's recording (recording.jsonl, config.json) from its journals' databases. */
export function writeRunRecording(ctx: StepContext, dir: string, config: StackConfig): RecordedRow[] {
  const journals = new Map<string, RecordedRow[]>();
  for (const name of ['operator', 'host-kernel', 'vmm', ...guestJournals(ctx)]) journals.set(name, readJournalFile(join(dir, `${name}.db`)).map((e) => toRecorded(name, e)));
  return writeRecording(dir, journals, config);
}

function guestJournals(ctx: StepContext): string[] {
  const t = ctx.transport;
  const names = t instanceof InProcessTransport ? [...t.stack.streams().keys()] : [...(t as RestTransport).journalNames()];
  return names.filter((n) => n.startsWith('guest-'));
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
