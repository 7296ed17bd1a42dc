// Defects already filed and not yet fixed on this branch: a violation they explain is counted and listed in the
// summary, but does not stop the campaign (`--strict` stops on them too). An entry names its issue and the words
// of the answer that shows it; delete the entry with the fix, and the fuzzer stops on it again.
import type { StepRecord, Violation } from '../replay/invariants/types';

export interface KnownDefect {
  /** Where it is filed, e.g. `issue 11 defect 5`. */
  id: string;
  what: string;
  /** True when a call of the step shows this defect (every violation of that step is then put down to it). */
  shows(step: StepRecord): boolean;
}

// Issue 11 defect 5 (a submission whose record the device never writes answered 500 EIO after 2000 polls) is
// fixed: the driver answers `pending` with the record's address. None is filed now.
export const KNOWN_DEFECTS: readonly KnownDefect[] = [];

/** The known defect that explains `found` (all found after `step`), or null. */
export function knownDefect(step: StepRecord | null, found: Violation[]): KnownDefect | null {
  if (!step || !found.length) return null;
  return KNOWN_DEFECTS.find((d) => d.shows(step)) ?? null;
}
