// The device side of PCIe PRI for a block-on-fault descriptor (Intel DSA BOF): before any byte moves, every page the
// descriptor needs is translated (PCIe ATS translation requests); the missing ones are asked for in one page
// request group, one request per page, the last one flagged last-in-group. A group index (PRG Index) is 9 bits per
// function, and a function never reuses an index while it waits for that group's response (PCIe 6.0 §10.4.1).
import type { Descriptor } from '@app/shared/dsa/descriptor';
import type { TimerHandle, Timers } from '@app/shared/timers';
import type { PageRequest, PageResponseCode } from '../ioasid/pgtbl';
import { PAGE_SIZE } from '../memory/memory.constants';
import { PRG_INDEX_LIMIT } from '../iommu/iommu.constants';
import { PRI_MAX_ROUNDS, PRI_RETRY_BACKOFF_MS } from './devices.constants';
import { type PageNeed, pagesNeeded } from './dsa-ops';

/** A translation request for one page: ok, or why not and whether a page request could fix it. */
export type Probe = (address: number, write: boolean) => { ok: true } | { ok: false; recoverable: boolean };

/**
 * The pages of `needs` that do not translate, in order, or null when one of them cannot be fixed by a page request
 * (the descriptor then runs as without the flag, and faults on it at once).
 */
export function missingPages(needs: readonly PageNeed[], probe: Probe): PageNeed[] | null {
  const missing: PageNeed[] = [];
  for (const need of needs) {
    const r = probe(need.address, need.write);
    if (r.ok) continue;
    if (!r.recoverable) return null;
    missing.push(need);
  }
  return missing;
}

/** One request per missing page (a page read and written asks once, for both), the last flagged last-in-group. */
export function groupRequests(missing: readonly PageNeed[], privileged: boolean): PageRequest[] {
  const byPage = new Map<number, PageRequest>();
  for (const need of missing) {
    const page = need.address - (need.address % PAGE_SIZE);
    const r = byPage.get(page) ?? { address: page, perm: { read: false, write: false, exec: false, privileged }, last: false };
    if (need.write) r.perm.write = true;
    else r.perm.read = true;
    byPage.set(page, r);
  }
  const requests = [...byPage.values()];
  if (requests.length > 0) requests[requests.length - 1].last = true;
  return requests;
}

/** The function's page request group indexes: lowest free first, held until the group's response arrives. */
export class PrgIndexes {
  private readonly used = new Uint8Array(PRG_INDEX_LIMIT);
  private inUse = 0;

  alloc(): number | null {
    if (this.inUse === PRG_INDEX_LIMIT) return null;
    const i = this.used.indexOf(0);
    this.used[i] = 1;
    this.inUse++;
    return i;
  }

  free(index: number): void {
    if (this.used[index] === 1) {
      this.used[index] = 0;
      this.inUse--;
    }
  }

  get outstanding(): number {
    return this.inUse;
  }

  /** Forget every index (a function-level reset). */
  clear(): void {
    this.used.fill(0);
    this.inUse = 0;
  }
}

/** Where a block-on-fault descriptor is in its page-request rounds. */
export interface PriState {
  /** Groups sent so far. */
  round: number;
  /** The group index it waits on (null between rounds). */
  grpid: number | null;
  /** Waiting for an answer, for the back-off, for a free group index; null: runnable. */
  waiting: 'answer' | 'backoff' | 'index' | null;
  answer: PageResponseCode | null;
  /** The back-off before this round ran: the next run sends its group at once. */
  backedOff: boolean;
  backoff: TimerHandle | null;
  /** The first page still missing: where a failure is reported. */
  first: PageNeed | null;
}

/** A descriptor as the page requester sees it: who it is, and its rounds so far. */
export interface PriWork {
  readonly ppasid: number | null;
  readonly privileged: boolean;
  pri: PriState | null;
}

export interface PriPort {
  probe(ppasid: number | null, address: number, write: boolean, privileged: boolean): { ok: true } | { ok: false; recoverable: boolean };
  pageRequest(ppasid: number | null, grpid: number, requests: PageRequest[], respond: (code: PageResponseCode) => void): void;
}

/**
 * The page requests of one function's block-on-fault descriptors: what a descriptor does now (run, wait, or end on
 * a page it cannot get), its group indexes, its back-off timers, and the answers.
 */
export class PageRequester {
  private readonly indexes = new PrgIndexes();
  readonly counts = { groups: 0, success: 0, invalid: 0 };

  constructor(
    private readonly port: PriPort,
    private readonly timers: Timers,
    /** The function's queued work (what may wait on a group or an index). */
    private readonly work: () => Iterable<PriWork>,
    /** A waiting descriptor became runnable. */
    private readonly wake: () => void,
  ) {}

  /**
   * `run`: every page translates, or one cannot be fixed by a page request (it then faults at once, as without
   * the flag); `wait`: a group was sent, or the back-off before the next one runs; `fail`: answered invalid, or a
   * page still missing after PRI_MAX_ROUNDS (status 2 at `pri.first`).
   */
  prepare(w: PriWork, d: Descriptor): 'run' | 'wait' | 'fail' {
    if (w.pri?.answer === 'invalid') return 'fail';
    const missing = missingPages(pagesNeeded(d), (address, write) => this.port.probe(w.ppasid, address, write, w.privileged));
    if (missing === null || missing.length === 0) return 'run';
    const pri: PriState = w.pri ?? { round: 0, grpid: null, waiting: null, answer: null, backedOff: false, backoff: null, first: null };
    w.pri = pri;
    pri.first = missing[0];
    if (pri.round >= PRI_MAX_ROUNDS) return 'fail';
    if (pri.answer === 'success' && !pri.backedOff) {
      // Answered success yet still missing (an overflowing IOMMU answers so): ask again later, not at once.
      pri.backedOff = true;
      pri.waiting = 'backoff';
      pri.backoff = this.timers.after(PRI_RETRY_BACKOFF_MS * 2 ** (pri.round - 1), () => {
        pri.backoff = null;
        if (pri.waiting !== 'backoff') return;
        pri.waiting = null;
        this.wake();
      });
      return 'wait';
    }
    const grpid = this.indexes.alloc();
    if (grpid === null) {
      pri.waiting = 'index'; // every index is out: a response frees one
      return 'wait';
    }
    Object.assign(pri, { round: pri.round + 1, backedOff: false, answer: null, grpid, waiting: 'answer' });
    this.counts.groups++;
    // The answer may come back inside this call (the kernel answers its own processes' requests at once).
    this.port.pageRequest(w.ppasid, grpid, groupRequests(missing, w.privileged), (code) => this.onResponse(grpid, code));
    return 'wait';
  }

  /** The descriptor leaves (done, drained, reset): its back-off stops, its index is free. */
  release(w: PriWork): void {
    if (!w.pri) return;
    w.pri.backoff?.cancel();
    w.pri.backoff = null;
    if (w.pri.grpid !== null) this.freeIndex(w.pri.grpid);
    w.pri.grpid = null;
  }

  /** A function-level reset: no group is outstanding any more. */
  clear(): void {
    this.indexes.clear();
  }

  /** The Page Request Group Response for `grpid`; one for an index nobody waits on (after a reset) is dropped. */
  private onResponse(grpid: number, code: PageResponseCode): void {
    let w: PriWork | undefined;
    for (const x of this.work()) if (x.pri?.grpid === grpid && x.pri.waiting === 'answer') w = x;
    if (!w?.pri) return;
    this.counts[code]++;
    Object.assign(w.pri, { grpid: null, waiting: null, answer: code });
    this.freeIndex(grpid);
    this.wake();
  }

  private freeIndex(grpid: number): void {
    this.indexes.free(grpid);
    for (const w of this.work()) if (w.pri?.waiting === 'index') w.pri.waiting = null;
  }
}
