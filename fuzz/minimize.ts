// Shrinks the operations that led to a violation to a short list that still violates the same check (ddmin over
// whole operations, Zeller's delta debugging): each candidate runs on a fresh stack of the same kind through
// FuzzRun, so what it keeps runs exactly as the campaign ran it. Removing an operation that created something a
// later one names makes that later step skip (its `${v…}` is never saved), which is how a candidate stays runnable.
import { mkdirSync, rmSync } from 'node:fs';
import type { StackConfig } from '../replay/recording';
import { writeRunRecording } from '../replay/scenario/runner';
import type { Violation } from '../replay/invariants/types';
import type { FuzzOp } from './op';
import { FuzzRun, type StepOutcome } from './run';

export interface Trial {
  /** The operations run (cut after the one that violated). */
  ops: FuzzOp[];
  violations: Violation[];
  outcomes: StepOutcome[][];
}

export interface MinimizeOptions {
  config: StackConfig;
  inProcess: boolean;
  name: string;
  /** Stop shrinking after this long (the best list so far is kept). */
  budgetMs: number;
}

/**
 * Runs `ops` on a fresh stack up to the first violation; null when none of `checks` was violated. With `recordTo`,
 * a run that violated leaves its recording there (replay/: recording.jsonl, the journals, config.json).
 */
export async function trial(ops: FuzzOp[], opts: MinimizeOptions, checks: Set<string>, recordTo?: string): Promise<Trial | null> {
  const run = new FuzzRun(opts.config, opts.inProcess, opts.name, null, true);
  let result: Trial | null = null;
  try {
    let found = await run.start();
    let i = 0;
    for (; i < ops.length && found.length === 0; i++) found = await run.run({ ...ops[i], learn: undefined });
    result = found.some((v) => checks.has(v.check)) ? { ops: ops.slice(0, i), violations: found, outcomes: run.outcomes } : null;
    if (result && recordTo) {
      rmSync(recordTo, { recursive: true, force: true });
      mkdirSync(recordTo, { recursive: true });
      await run.transport.saveDatabases(recordTo);
    }
  } finally {
    await run.close();
  }
  if (result && recordTo) writeRunRecording(run.ctx, recordTo, opts.config);
  return result;
}

export interface Minimized extends Trial {
  /** Candidate lists tried. */
  trials: number;
  /** False when the budget ran out before ddmin was done (the list is shorter, perhaps not 1-minimal). */
  complete: boolean;
}

/** The shortest list ddmin finds within the budget that violates `checks` again; null if `ops` itself does not. */
export async function minimize(ops: FuzzOp[], checks: Set<string>, opts: MinimizeOptions): Promise<Minimized | null> {
  const deadline = Date.now() + opts.budgetMs;
  let best = await trial(ops, opts, checks);
  let trials = 1;
  if (!best) return null;
  let n = 2;
  while (best.ops.length >= 2) {
    if (Date.now() > deadline) return { ...best, trials, complete: false };
    const cur = best.ops;
    const size = Math.ceil(cur.length / n);
    let reduced: Trial | null = null;
    for (let at = 0; at < cur.length && !reduced; at += size) {
      if (Date.now() > deadline) return { ...best, trials, complete: false };
      trials++;
      // Keep the last operation: the violation is found after it.
      const candidate = [...cur.slice(0, at), ...cur.slice(at + size)];
      if (at + size >= cur.length) candidate.push(cur[cur.length - 1]);
      if (candidate.length < cur.length) reduced = await trial(candidate, opts, checks);
    }
    if (reduced) {
      best = reduced;
      n = Math.max(n - 1, 2);
    } else if (size <= 1) break;
    else n = Math.min(n * 2, cur.length);
  }
  return { ...best, trials, complete: true };
}
