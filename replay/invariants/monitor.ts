// Runs the invariant checks along a run: one observation after every step (the previous one is the step's
// "before"), the journals folded as they grow. The fuzzer, the scenario runner (`expect: { invariants: … }`) and
// the replayer (`--invariants`) all drive one of these over whichever transport they run.
import type { JournalEvent } from '@app/shared/journal/journal';
import { checkNamed, CHECKS, runChecks } from './registry';
import { foldRows, newFold } from './journals';
import type { StateSource } from './observe';
import { noteRamWrittenBehindOs } from './vmm';
import type { Check, JournalFold, Snapshot, StepRecord, Violation } from './types';

export class InvariantMonitor {
  private last: Snapshot | null = null;
  private readonly fold: JournalFold = newFold();
  readonly checks: readonly Check[];
  /** Checks run so far (one per check per observation). */
  checksRun = 0;
  /** Observations made so far; the rows journaled between the last two, and the step that led to the last. */
  observations = 0;
  lastRows = new Map<string, JournalEvent[]>();
  lastStep: StepRecord | null = null;

  constructor(
    private readonly source: StateSource,
    /** Only these checks (by name); all by default. */
    names?: readonly string[],
  ) {
    this.checks = names ? names.map(checkNamed) : CHECKS;
  }

  /** The first observation (what the first step's "before" is); its rows are folded too. */
  async start(): Promise<Violation[]> {
    return this.observe(null);
  }

  /** Observes the stack after `step` (the stack is quiet) and checks it; every violation found. */
  async observe(step: StepRecord | null): Promise<Violation[]> {
    const rows = await this.source.newRows();
    this.lastRows = rows;
    this.lastStep = step;
    this.observations++;
    foldRows(this.fold, rows);
    const now = await this.source.snapshot();
    noteRamWrittenBehindOs(this.fold, rows, this.last, now);
    const input = { now, before: this.last, step, rows, fold: this.fold, stack: this.source.stack };
    const found = runChecks(this.checks, input);
    this.checksRun += this.checks.filter((c) => !c.inProcessOnly || this.source.stack).length;
    this.last = now;
    return found;
  }

  /** The latest observation. */
  get snapshot(): Snapshot | null {
    return this.last;
  }
}
