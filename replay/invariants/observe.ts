// Where the checks read the stack: in process, the apps' own objects (kernel-state, the VMM's state, each guest's
// status) and the host's admin views issued to its dispatcher directly — never through the operator's door, whose
// crossing would move the apps' Lamport clocks and so their logical timers; over REST, GET /v1/audit/state of
// every app and the admin routes (after a quiesce the operator's clock is already every app's: reading moves
// nothing). Each source also reads the rows every journal wrote since it last looked, with its own cursors.
import type { PageRequestQueueView, PasidPool } from '@app/shared/contract/host-kernel';
import type { JournalEvent, JournalFilter } from '@app/shared/journal/journal';
import { allJournalEvents } from '@app/shared/journal/journal-pages';
import { PASID_BITS } from '@app/shared/vtd/vtd.constants';
import type { GuestAppStatus } from '../../apps/guest/src/guest.app';
import type { LimitsView } from '../../apps/host-kernel/src/hw/limits-view';
import { kernelState, type KernelState } from '../../apps/host-kernel/src/kernel-state';
import { hwOps } from '../../apps/host-kernel/src/ops';
import { vmmState, type VmmState } from '../../apps/vmm/src/vmm-state';
import type { InProcessStack } from '../../stack/in-process-stack';
import type { StackRequest, StackResponse } from '../../stack/door/door';
import { JournalReader } from '../journal-reader';
import { plainCopy } from './plain';
import type { Snapshot } from './types';

export interface StateSource {
  readonly kind: 'in-process' | 'rest';
  /** The in-process stack (null over REST). */
  readonly stack: InProcessStack | null;
  snapshot(): Promise<Snapshot>;
  /** Rows journaled since the last call, by journal (`host-kernel`, `vmm`, `guest-<vm>`). */
  newRows(): Promise<Map<string, JournalEvent[]>>;
}

/** Plain data, as it would cross the wire (no reference into a live object survives into a snapshot). */
const plain = plainCopy;

const NO_PINS: KernelState['pins'] = Object.freeze([]);

/**
 * The kernel's state as plain data. Its pins (thousands of [pfn, count] pairs) are the kernel's own frozen array,
 * not copied: numbers only, so it is what JSON would give, and the kernel answers the same array until a count
 * changes (most steps change none), which the checks that compare two snapshots see at once.
 */
function hostState(k: InProcessStack['host']['kernel']): KernelState {
  const state = kernelState(k);
  const pins = state.pins;
  state.pins = NO_PINS;
  const host = plain(state);
  host.pins = pins;
  return host;
}

export class InProcessSource implements StateSource {
  readonly kind = 'in-process' as const;
  /** Each journal's new rows (the operator's are the fuzzer's own, not the stack's). */
  private readonly journals = new JournalReader();

  constructor(private readonly current: () => InProcessStack) {}

  get stack(): InProcessStack {
    return this.current();
  }

  async snapshot(): Promise<Snapshot> {
    const stack = this.stack;
    const k = stack.host.kernel;
    const admin = { kind: 'admin' } as const;
    const d = stack.host.dispatcher;
    const [pasids, limits, pageRequests] = await Promise.all([d.exec(hwOps.pasids, admin, {}), d.exec(hwOps.limits, admin, {}), d.exec(hwOps.pageRequests, admin, {})]);
    const guests = new Map<number, GuestAppStatus>();
    for (const [id, g] of [...stack.guests].sort(([a], [b]) => a - b)) guests.set(id, plain(g.status()));
    return {
      host: hostState(k),
      views: plain({ pasids: pasids as PasidPool, limits, pageRequests: pageRequests as PageRequestQueueView }),
      vmm: stack.down.has('vmm') ? null : plain(vmmState(stack.vmm)),
      guests,
      pasidSpace: k.ioasids.pasidLimit,
    };
  }

  newRows(): Promise<Map<string, JournalEvent[]>> {
    return this.journals.newRows(this.stack.streams(), 'operator');
  }
}

/** What the REST source needs of a transport: requests to any app, its admin tokens, the journals it started. */
export interface RestLike {
  request(req: StackRequest): Promise<StackResponse>;
  adminToken(app: 'host-kernel' | 'vmm'): string;
  journalNames(): string[];
}

export class RestSource implements StateSource {
  readonly kind = 'rest' as const;
  readonly stack = null;
  private readonly cursors = new Map<string, number>();

  constructor(
    private readonly t: RestLike,
    private readonly auditToken: string,
  ) {}

  /** GET an app's route; null when the app is not running (the transport refuses, or the connection fails). */
  private async get<T>(target: string, path: string, token: string): Promise<T | null> {
    const guest = /^guest-(\d+)$/.exec(target);
    const req: StackRequest = guest ? { app: 'guest', vm: Number(guest[1]), method: 'GET', path, token } : { app: target as 'host-kernel', method: 'GET', path, token };
    try {
      const res = await this.t.request(req);
      if (res.status !== 200) throw new Error(`${target} GET ${path}: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body as T;
    } catch (err) {
      if (/is not running|fetch failed|ECONNREFUSED/.test(String((err as Error).message) + String((err as { cause?: unknown }).cause ?? ''))) return null;
      throw err;
    }
  }

  /** Every app read at once: the stack is quiet, so no read can see another's effects. */
  async snapshot(): Promise<Snapshot> {
    const admin = this.t.adminToken('host-kernel');
    const guestNames = this.t.journalNames().filter((n) => n.startsWith('guest-')).sort();
    const [state, pasids, limits, pageRequests, vmm, ...guestStates] = await Promise.all([
      this.get<{ state: KernelState }>('host-kernel', '/v1/audit/state', this.auditToken),
      this.get<PasidPool>('host-kernel', '/v1/hw/pasids', admin),
      this.get<LimitsView>('host-kernel', '/v1/hw/limits', admin),
      this.get<PageRequestQueueView>('host-kernel', '/v1/hw/iommu/page-requests', admin),
      this.get<{ state: VmmState }>('vmm', '/v1/audit/state', this.auditToken),
      ...guestNames.map((name) => this.get<{ state: GuestAppStatus }>(name, '/v1/audit/state', this.auditToken)),
    ]);
    if (!state) throw new Error('the host kernel is not running');
    const guests = new Map<number, GuestAppStatus>();
    guestNames.forEach((name, n) => {
      const g = guestStates[n];
      if (g) guests.set(Number(name.slice('guest-'.length)), g.state);
    });
    return {
      host: state.state,
      views: { pasids: pasids as PasidPool, limits: limits as LimitsView, pageRequests: pageRequests as PageRequestQueueView },
      vmm: vmm?.state ?? null,
      guests,
      pasidSpace: 2 ** PASID_BITS,
    };
  }

  async newRows(): Promise<Map<string, JournalEvent[]>> {
    const names = this.t.journalNames();
    const fetched = await Promise.all(
      names.map((name) => {
        const audit = { events: async (f: JournalFilter) => (await this.get<JournalEvent[]>(name, `/v1/audit/events?limit=${f.limit}&afterSeq=${f.afterSeq}`, this.auditToken)) ?? [] };
        return allJournalEvents(audit, { afterSeq: this.cursors.get(name) ?? 0 });
      }),
    );
    const out = new Map<string, JournalEvent[]>();
    names.forEach((name, n) => {
      const rows = fetched[n];
      if (rows.length) this.cursors.set(name, rows[rows.length - 1].seq);
      out.set(name, rows);
    });
    return out;
  }
}
