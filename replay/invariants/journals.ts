// The journals tell the truth (DESIGN §6: a state change and its row are one commit): each journal's rows come in
// order, name only operations and errnos of the contract, inputs carry what replay needs, and the host journal,
// folded from its first row, says exactly which PASIDs are allocated or parked now — and never hands one out twice.
import { GUEST_OPERATIONS, HOST_EVENTS, HOST_OPERATIONS, VMM_OPERATIONS } from '@app/shared/contract/operations';
import { isErrno } from '@app/shared/errno';
import type { JournalEvent } from '@app/shared/journal/journal';
import { check, type Check, type JournalFold } from './types';

const GROUP = 'journals';
const OPERATIONS: Record<string, Set<string>> = {
  'host-kernel': new Set([...Object.keys(HOST_OPERATIONS), ...Object.keys(HOST_EVENTS)]),
  vmm: new Set(Object.keys(VMM_OPERATIONS)),
  guest: new Set(Object.keys(GUEST_OPERATIONS)),
};

export function newFold(): JournalFold {
  return { livePasids: new Set(), last: new Map(), problems: [], ramWrittenBehindOs: new Map() };
}

/** Folds the rows of one step into `fold` (its `problems` are this step's). */
export function foldRows(fold: JournalFold, rows: Map<string, JournalEvent[]>): void {
  fold.problems = [];
  const problem = (name: string, message: string): void => void fold.problems.push({ check: name, message });
  for (const [journal, list] of rows) {
    for (const r of list) {
      const last = fold.last.get(journal);
      if (last && (r.seq <= last.seq || r.logical < last.logical)) problem('journal-order', `${journal} seq ${r.seq} (Lamport ${r.logical}) after seq ${last.seq} (Lamport ${last.logical})`);
      fold.last.set(journal, { seq: r.seq, logical: r.logical });
      const known = OPERATIONS[r.app];
      if (known && !known.has(r.operation)) problem('journal-names-contract', `${journal} seq ${r.seq}: operation ${r.operation} is not in the ${r.app} contract`);
      if (r.errno !== null && !isErrno(r.errno)) problem('journal-names-contract', `${journal} seq ${r.seq}: errno ${String(r.errno)} is not in the errno table`);
      if (r.input && (!r.request || typeof r.request.kind !== 'string')) problem('inputs-carry-requests', `${journal} seq ${r.seq} (${r.operation}) is an input without its request`);
      if (journal === 'host-kernel') foldHost(fold, r, problem);
    }
  }
}

function foldHost(fold: JournalFold, r: JournalEvent, problem: (name: string, message: string) => void): void {
  // A reboot frees everything (DESIGN §6: a host restart is a reboot).
  if (r.operation === 'kernel.boot') fold.livePasids.clear();
  if (r.errno !== null) return;
  if (r.operation === 'ioasid.alloc') {
    const p = (r.result as { ioasid?: number } | null)?.ioasid;
    if (typeof p !== 'number') return;
    if (fold.livePasids.has(p)) problem('parked-never-handed-out', `host-kernel seq ${r.seq}: ioasid.alloc handed out PASID ${p}, which the journal says was never freed`);
    fold.livePasids.add(p);
  } else if (r.operation === 'event.ioasid-freed') {
    const p = (r.args as { ppasid?: number } | null)?.ppasid;
    if (typeof p !== 'number') return;
    if (!fold.livePasids.delete(p)) problem('journal-explains-pasids', `host-kernel seq ${r.seq}: PASID ${p} freed, but the journal never allocated it`);
  }
}

const fromFold = (name: string): Check['run'] => ({ fold }) => fold.problems.filter((p) => p.check === name).map((p) => p.message);

export const JOURNAL_CHECKS: Check[] = [
  check({ name: 'journal-order', group: GROUP, rule: "each journal's rows come in seq order, their Lamport times never going back", run: fromFold('journal-order') }),
  check({ name: 'journal-names-contract', group: GROUP, rule: 'rows name only operations of their app\'s contract and errnos of the errno table', run: fromFold('journal-names-contract') }),
  check({ name: 'inputs-carry-requests', group: GROUP, rule: 'an input row carries the request replay re-issues', run: fromFold('inputs-carry-requests') }),
  check({
    name: 'journal-explains-pasids',
    group: GROUP,
    rule: 'a state change and its row are one commit: the host journal, folded, names exactly the PASIDs allocated or parked now',
    run: ({ now, fold }) => {
      const out = fold.problems.filter((p) => p.check === 'journal-explains-pasids').map((p) => p.message);
      const state = new Set(now.host.ioasids.map((i) => i.id));
      const missing = [...state].filter((p) => !fold.livePasids.has(p));
      const extra = [...fold.livePasids].filter((p) => !state.has(p));
      if (missing.length) out.push(`PASIDs ${missing.slice(0, 10).join(', ')} are allocated or parked, but the journal never handed them out (or freed them)`);
      if (extra.length) out.push(`the journal says PASIDs ${extra.slice(0, 10).join(', ')} are allocated or parked, but the host has no such ioasid`);
      return out;
    },
  }),
];
