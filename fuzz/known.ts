// Defects already filed and not yet fixed on this branch: a violation they explain is counted and listed in the
// summary, but does not stop the campaign (`--strict` stops on them too). An entry names its issue and the words
// of the answer that shows it; delete the entry with the fix, and the fuzzer stops on it again.
import type { StepRecord, Violation } from './invariants/types';

export interface KnownDefect {
  /** Where it is filed, e.g. `issue 11 defect 5`. */
  id: string;
  what: string;
  /** True when a call of the step shows this defect (every violation of that step is then put down to it). */
  shows(step: StepRecord): boolean;
}

export const KNOWN_DEFECTS: readonly KnownDefect[] = [
  {
    id: 'issue 11 defect 5',
    what: 'a guest submission to a vRID its process is not bound on polls 2000 times, then answers 500 EIO (and leaves the descriptor queued)',
    shows: (step) => step.calls.some((c) => c.response?.status === 500 && /no completion from vrid .* after \d+ polls/.test(String((c.response.body as { message?: unknown } | null)?.message))),
  },
];

/** The known defect that explains `found` (all found after `step`), or null. */
export function knownDefect(step: StepRecord | null, found: Violation[]): KnownDefect | null {
  if (!step || !found.length) return null;
  return KNOWN_DEFECTS.find((d) => d.shows(step)) ?? null;
}
