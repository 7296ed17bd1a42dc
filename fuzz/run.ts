// Runs a list of fuzzer operations on a fresh stack, every step through the scenario runner's own session (so a
// scenario written from them runs the same way), with the invariants checked after every step that leaves the
// stack quiet. The fuzzer runs its campaign through this; the minimizer re-runs candidate lists with it.
import { SeededStream } from '@app/shared/replay/seeded';
import { InProcessTransport } from '../replay/in-process-transport';
import { Operator } from '../replay/operator';
import type { StackConfig } from '../replay/recording';
import { RestTransport } from '../replay/rest-transport';
import { ScenarioSession } from '../replay/scenario/session';
import { type StepContext, StepFailure } from '../replay/scenario/steps';
import type { StackResponse, Transport } from '../replay/transport';
import type { Coverage } from './coverage';
import { serverError } from '../replay/invariants/calls';
import type { Violation } from '../replay/invariants/types';
import { knownDefect } from './known';
import type { FuzzOp } from './op';

/**
 * How a step ended: its answer's status and errno (all a scenario and the coverage need of it: a run keeps one per
 * step, and a whole answer, a read's bytes included, was 40% of a long run's heap growth), or why it did not run
 * (`skipped`: a name it uses was never saved).
 */
export type StepOutcome = { status: number; errno: string | null } | { skipped: string } | { error: string };

export class FuzzRun {
  readonly transport: Transport;
  readonly ctx: StepContext;
  session!: ScenarioSession;
  /** Calls answered 5xx (background ones included). */
  fiveXX = 0;
  steps = 0;
  private counted = 0;
  /** Violations put down to a known defect (known.ts), by its id: counted, not stopping the run. */
  readonly known = new Map<string, number>();
  /** Outcomes of every step of every operation run, in order (the scenario writer keeps the ones that ran). */
  readonly outcomes: StepOutcome[][] = [];

  constructor(
    readonly config: StackConfig,
    inProcess: boolean,
    /** The scenario name: its trace ids come from the stream the scenario runner will use for it. */
    readonly name: string,
    private readonly coverage: Coverage | null = null,
    /** Stop on known defects too. */
    private readonly strict = false,
  ) {
    this.transport = inProcess ? new InProcessTransport(config) : new RestTransport(config);
    this.ctx = { transport: this.transport, operator: new Operator(this.transport), traces: new SeededStream(config.seed ?? 0, `scenario/${name}`), vars: new Map(), rows: new Map() };
  }

  async start(): Promise<Violation[]> {
    await this.transport.start();
    await this.transport.quiesce();
    this.session = await ScenarioSession.open(this.ctx, true);
    // The stack's own start (the kernel's boot, the apps' first rows) counts as reached: it ran in this campaign.
    const m = this.session.monitor;
    if (m) {
      this.counted = m.observations;
      this.coverage?.rows(m.lastRows);
    }
    return [...this.session.violations];
  }

  get violations(): Violation[] {
    return this.session.violations;
  }

  /** Runs one operation; returns the violations it caused (the first ones found after any of its steps). */
  async run(op: FuzzOp): Promise<Violation[]> {
    const before = this.session.violations.length;
    const outcomes: StepOutcome[] = [];
    const answers: Array<StackResponse | null> = [];
    let background: StackResponse | null = null;
    for (const step of op.steps) {
      try {
        const { res } = await this.session.step(step);
        this.steps++;
        outcomes.push({ status: res.status, errno: (res.body as { errno?: string } | null)?.errno ?? null });
        answers.push(step.background ? null : res);
        if (this.session.background.length === 1) background = this.session.background[0];
        const m = this.session.monitor;
        if (m && m.observations !== this.counted) {
          this.counted = m.observations;
          this.coverage?.rows(m.lastRows);
          this.coverage?.calls(m.lastStep?.calls ?? []);
          this.fiveXX += (m.lastStep?.calls ?? []).filter(serverError).length;
        }
      } catch (err) {
        outcomes.push(err instanceof StepFailure ? { skipped: err.message } : { error: (err as Error).message });
        answers.push(null);
      }
      if (this.session.violations.length > before && !this.strict) {
        const defect = knownDefect(this.session.monitor?.lastStep ?? null, this.session.violations.slice(before));
        if (defect) this.known.set(defect.id, (this.known.get(defect.id) ?? 0) + this.session.violations.splice(before).length);
      }
      if (this.session.violations.length > before) break;
    }
    // A background step's answer is the one that came back meanwhile (a race has exactly one).
    op.learn?.(op.steps.map((s, i) => (s.background ? background : (answers[i] ?? null))));
    const last = outcomes.at(-1);
    const outcome = !last ? 'none' : 'status' in last ? (last.status < 300 ? 'ok' : (last.errno ?? String(last.status))) : 'skipped' in last ? 'skipped' : 'error';
    this.coverage?.op(op.name, outcome);
    this.outcomes.push(outcomes);
    return this.session.violations.slice(before);
  }

  close(): Promise<void> {
    return this.transport.close();
  }
}
