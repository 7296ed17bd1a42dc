// `--watch <path>`: one value of the stack's state followed through an in-process replay, read right after every
// commit of every journal; each commit that changed it is listed with the row that names it. What `git bisect`
// would find by halving the inputs, read off in one pass: which call parked that PASID, which exit dropped that
// route, when a VM's shadow table lost its binding.
import { isDeepStrictEqual } from 'node:util';
import type { Recording, StackConfig } from './recording';
import { refName, replay, type ReplayResult } from './replayer';
import { type StatePath, statePart, valueAt } from './state';

export interface WatchedChange {
  /** The commit's first row, `<journal>:<seq>`: the call whose commit it is (what `--until` takes). */
  at: string;
  /** That row's operation. */
  operation: string;
  /** Absent when the path led nowhere before (or after). */
  before?: unknown;
  after?: unknown;
}

export async function watchValue(rec: Recording, path: StatePath, override: Partial<StackConfig> = {}): Promise<{ result: ReplayResult; initial: unknown; changes: WatchedChange[] }> {
  const changes: WatchedChange[] = [];
  let initial: unknown = undefined;
  let value: unknown = undefined;
  let started = false;
  const result = await replay(rec, {
    inProcess: true,
    override,
    // The value once the stack has booted, before the first input; the changes are those the inputs made.
    afterStart: (stack) => {
      started = true;
      initial = value = stack ? valueAt(statePart(stack, path.root), path) : undefined;
    },
    afterCommit: (journal, first, stack) => {
      if (!started) return;
      const now = valueAt(statePart(stack, path.root), path);
      if (isDeepStrictEqual(now, value)) return;
      changes.push({ at: refName({ journal, seq: first.seq }), operation: first.operation, ...(value === undefined ? {} : { before: value }), ...(now === undefined ? {} : { after: now }) });
      value = now;
    },
  });
  return { result, initial, changes };
}
