// The host IOMMU's page request queue (VT-d §7.5 page request queue + Linux drivers/iommu/intel/prq.c and
// drivers/iommu/io-pgfault.c in one): a device's page request group arrives whole, is checked as prq.c checks it,
// routed to the fault handler of the page table its (RID, PASID) is attached to, and held until someone answers.
// Every group and every answer is reported (journaled by the kernel): who answered, the code, and why.
import type { TimerHandle, Timers } from '@app/shared/timers';
import { CANONICAL_LIMIT, PAGE_SIZE } from '@app/shared/x86/x86.constants';
import type { IopfGroup, IopfHandler, PageRequest, PageResponseCode, PageTableHandle } from '../ioasid/pgtbl';
import type { AttachTable } from './attach-table';
import { PRG_INDEX_LIMIT } from './iommu.constants';

/** Why a group was answered. */
export type AnswerReason = 'response' | 'teardown' | 'timeout' | 'overflow' | 'refused';

/** Who answers a group: the kernel (host SVA), a fault queue's owner, or nobody (refused before any handler). */
export type HandlerKind = 'kernel' | 'queue' | null;

/** What the queue reports; the kernel adds the pid that hears about it and journals it. */
export type PageEvent =
  | {
      kind: 'page-request';
      seq: number;
      bdf: string;
      ppasid: number | null;
      grpid: number;
      requests: PageRequest[];
      /** Who will answer; for a fault queue, `fd` and `faultQueue` say where its owner reads it. */
      handler: HandlerKind;
      fd?: number;
      faultQueue?: number;
    }
  | { kind: 'page-response'; seq: number; bdf: string; ppasid: number | null; grpid: number; code: PageResponseCode; by: string; reason: AnswerReason; detail?: string };

export interface PrqOptions {
  depth: number;
  timeoutMs: number;
  timers: Timers;
}

/** The device's side of a group: how its Page Request Group Response reaches it. */
export type DeviceResponder = (code: PageResponseCode) => void;

interface Pending {
  group: IopfGroup;
  handler: IopfHandler;
  respond: DeviceResponder;
  timer: TimerHandle | null;
}

/** A pending group as the admin view and the kernel state show it. */
export interface PendingGroupInfo {
  seq: number;
  bdf: string;
  ppasid: number;
  grpid: number;
  requests: number;
  handler: 'kernel' | 'queue';
  owner: number | null;
}

export class PageRequestQueue {
  private readonly pending = new Map<number, Pending>();
  private held = 0;
  private nextSeq = 1;
  private overflowCount = 0;
  /** Answers given since boot, by `code/reason` (the metrics read them). */
  private readonly answered = new Map<string, number>();

  constructor(
    private readonly table: AttachTable,
    private readonly opts: PrqOptions,
    private readonly report: (e: PageEvent, route: PageTableHandle | null) => void,
  ) {
    for (const [name, v] of [['depth', opts.depth], ['timeoutMs', opts.timeoutMs]] as const) {
      if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`page request queue ${name} ${v} must be a positive integer`);
    }
  }

  /**
   * A page request group from device `bdf` (the device sends it whole; its last request carries LPIG). Order:
   * the hardware queue first (full → the IOMMU answers success itself, VT-d PRQ overflow), then prq.c's checks
   * (malformed → invalid), then io-pgfault's routing (no route or no handler → invalid), then the handler.
   */
  submit(bdf: string, ppasid: number | null, grpid: number, requests: PageRequest[], respond: DeviceResponder): void {
    const seq = this.nextSeq++;
    const found = ppasid === null ? null : this.table.find(bdf, ppasid);
    const route = found?.pgtbl ?? null;
    const base = { seq, bdf, ppasid, grpid };
    const refuse = (handler: HandlerKind, code: PageResponseCode, by: string, reason: AnswerReason, detail?: string): void => {
      this.report({ kind: 'page-request', ...base, requests: copyRequests(requests), handler }, route);
      this.report({ kind: 'page-response', ...base, code, by, reason, ...(detail ? { detail } : {}) }, route);
      this.count(code, reason);
      respond(code);
    };
    if (this.held + requests.length > this.opts.depth) {
      // VT-d: a full PRQ sets PRO and the hardware auto-responds Success to the last request of a group, so the
      // device retries later; Linux then discards the partial groups (iopf_queue_discard_partial).
      this.overflowCount++;
      refuse(null, 'success', 'iommu', 'overflow', `${this.held} of ${this.opts.depth} entries in use`);
      return;
    }
    const bad = malformed(ppasid, grpid, requests);
    if (bad) return refuse(null, 'invalid', 'kernel', 'refused', bad);
    if (!found || found.blocked || ppasid === null) return refuse(null, 'invalid', 'kernel', 'refused', `no route for ${bdf} PASID ${ppasid}`);
    const handler = found.pgtbl.iopf;
    if (!handler) return refuse(null, 'invalid', 'kernel', 'refused', `the ${found.pgtbl.kind} page table of PASID ${ppasid} takes no page requests`);
    const group: IopfGroup = { seq, bdf, ppasid, grpid, requests: copyRequests(requests) };
    const owner = handler.owner;
    this.pending.set(seq, { group, handler, respond, timer: null });
    this.held += requests.length;
    this.report({ kind: 'page-request', ...base, requests: copyRequests(requests), handler: owner.kind, ...(owner.kind === 'queue' ? { fd: owner.fd, faultQueue: owner.faultQueue } : {}) }, route);
    const answer = handler.handle(group);
    if (answer !== 'queued') {
      this.answer(seq, answer, 'kernel', 'response');
      return;
    }
    const p = this.pending.get(seq);
    if (p) p.timer = this.opts.timers.after(this.opts.timeoutMs, () => void this.answer(seq, 'invalid', 'kernel', 'timeout'));
  }

  /**
   * Answers pending group `seq` and sends the response to the device; false if it is no longer pending. `report`
   * false: the caller journals the answer itself (a userspace response, in its own row).
   */
  answer(seq: number, code: PageResponseCode, by: string, reason: AnswerReason, report = true): boolean {
    const p = this.pending.get(seq);
    if (!p) return false;
    this.pending.delete(seq);
    this.held -= p.group.requests.length;
    p.timer?.cancel();
    p.handler.forget(seq);
    const { bdf, ppasid, grpid } = p.group;
    if (report) this.report({ kind: 'page-response', seq, bdf, ppasid, grpid, code, by, reason }, this.table.find(bdf, ppasid)?.pgtbl ?? null);
    this.count(code, reason);
    p.respond(code);
    return true;
  }

  /** Teardown of a route (DISALLOW, DESTROY, close): every pending group of (bdf, PASID) is answered invalid. */
  answerRoute(bdf: string, ppasid: number | null): number {
    return this.answerAll((g) => g.bdf === bdf && g.ppasid === ppasid);
  }

  /** Teardown of a handler (a fault queue destroyed): every group it holds is answered invalid. */
  answerHandler(handler: IopfHandler): number {
    return this.answerAll((_g, h) => h === handler);
  }

  /** A pending group, or undefined (a fault queue reads what it holds through this). */
  group(seq: number): IopfGroup | undefined {
    return this.pending.get(seq)?.group;
  }

  pendingGroups(): PendingGroupInfo[] {
    return [...this.pending.values()].map(({ group: g, handler }) => ({
      seq: g.seq,
      bdf: g.bdf,
      ppasid: g.ppasid,
      grpid: g.grpid,
      requests: g.requests.length,
      handler: handler.owner.kind,
      owner: handler.owner.kind === 'queue' ? handler.owner.pid : null,
    }));
  }

  stats(): { depth: number; held: number; pending: number; overflows: number; timeoutMs: number } {
    return { depth: this.opts.depth, held: this.held, pending: this.pending.size, overflows: this.overflowCount, timeoutMs: this.opts.timeoutMs };
  }

  /** Every answer since boot by code and reason: [{ code, reason }, count]. */
  answers(): Array<[{ code: PageResponseCode; reason: AnswerReason }, number]> {
    return [...this.answered].map(([k, n]) => {
      const [code, reason] = k.split('/') as [PageResponseCode, AnswerReason];
      return [{ code, reason }, n];
    });
  }

  private count(code: PageResponseCode, reason: AnswerReason): void {
    const k = `${code}/${reason}`;
    this.answered.set(k, (this.answered.get(k) ?? 0) + 1);
  }

  private answerAll(match: (g: IopfGroup, h: IopfHandler) => boolean): number {
    const victims = [...this.pending.values()].filter((p) => match(p.group, p.handler)).map((p) => p.group.seq);
    for (const seq of victims) this.answer(seq, 'invalid', 'kernel', 'teardown');
    return victims.length;
  }
}

/**
 * The checks Linux prq_event_thread() makes before reporting a request (each a `bad_req`, answered invalid), plus
 * the group's own shape: a PASID, canonical page-aligned addresses, no Privilege Mode request (Linux SVA binds
 * user address spaces only), no execute-with-read, a 9-bit index, and exactly one last request, at the end.
 */
function malformed(ppasid: number | null, grpid: number, requests: PageRequest[]): string | null {
  if (ppasid === null) return 'page request without PASID';
  if (!Number.isInteger(grpid) || grpid < 0 || grpid >= PRG_INDEX_LIMIT) return `group index ${grpid} is not 9 bits`;
  if (requests.length === 0) return 'empty page request group';
  for (let i = 0; i < requests.length; i++) {
    const r = requests[i];
    if (!Number.isSafeInteger(r.address) || r.address < 0 || r.address >= CANONICAL_LIMIT || r.address % PAGE_SIZE !== 0) {
      return `address ${r.address} is not a canonical page address`;
    }
    if (r.perm.privileged && (r.perm.read || r.perm.write)) return 'page request in Privilege Mode';
    if (r.perm.exec && r.perm.read) return 'execution request not supported';
    if (!r.perm.read && !r.perm.write && !r.perm.exec) return 'page request for no access';
    if (r.last !== (i === requests.length - 1)) return 'last-in-group must flag exactly the final request';
  }
  return null;
}

function copyRequests(requests: readonly PageRequest[]): PageRequest[] {
  return requests.map((r) => ({ address: r.address, perm: { ...r.perm }, last: r.last }));
}
