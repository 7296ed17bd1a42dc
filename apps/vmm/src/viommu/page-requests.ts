// The vIOMMU's page request queue and the relay behind it (DESIGN §10): the VM's host fault queue (iommufd FAULT
// object) is read whole; each group goes to the guest in guest terms (vRID, vPASID, grpid, addresses, access), as
// VT-d page request descriptors do; the guest's page group response goes back to the host by the group's cookie.
// QEMU intel_iommu models the PRQ for emulated devices only (upstream has no passthrough PRI yet); this is the
// passthrough side, with the gaps closed: a Response Failure never reaches the host (it would disable PRI of the
// function for every user, PCIe §10.4.2.1), a full guest queue is answered success (as VT-d hardware answers a full
// PRQ), and a guest answer reaches exactly one host group even when the device reuses a group index.
import type { FaultGroup, FaultResponseCode, PagePerm } from '@app/shared/contract/host-kernel';
import { KernelError } from '@app/shared/errno';
import type { GuestPageResponse, VirtualPageRequest } from './viommu.types';

/** What the relay needs of the host: the VM's fault queue. */
export interface FaultQueuePort {
  read(): Promise<FaultGroup[]>;
  respond(cookie: number, code: FaultResponseCode): Promise<void>;
}

/** Host ids in guest terms; null when the group is not this VM's (an unknown device or an unbound pPASID). */
export interface GuestNames {
  vrid(bdf: string): number | null;
  vpasid(ppasid: number): number | null;
}

/** A guest-visible group and what only the VMM knows of it. */
interface Outstanding extends VirtualPageRequest {
  /** The n-th group forwarded with this (vrid, vpasid, grpid): a reused index is told apart by it. */
  generation: number;
  cookie: number;
}

/** What one read of the host queue did with each group. */
export interface PulledGroup {
  grpid: number;
  requests: number;
  vrid: number | null;
  vpasid: number | null;
  /** forwarded to the guest, or answered by the VMM itself (and why). */
  outcome: 'forwarded' | 'overflow' | 'not-this-vm';
  seq?: number;
}

const key = (vrid: number, vpasid: number, grpid: number): string => `${vrid}/${vpasid}/${grpid}`;

export class PageRequestRelay {
  private readonly queue: Outstanding[] = [];
  private readonly generations = new Map<string, number>();
  private held = 0;
  private seq = 0;
  private overflowCount = 0;
  /** Reads of the host queue run one at a time (a read delivers: two at once would race for the same groups). */
  private reading: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly host: FaultQueuePort,
    private readonly names: GuestNames,
    /** Requests the guest page request queue holds at once. */
    private readonly depth: number,
  ) {
    if (!Number.isSafeInteger(depth) || depth < 1) throw new KernelError('EINVAL', `guest page request queue depth ${depth} must be a positive integer`);
  }

  /** Reads every unread host group and forwards it; returns what was done with each, and the forwarded ones. */
  pull(): Promise<{ groups: PulledGroup[]; forwarded: VirtualPageRequest[] }> {
    const run = this.reading.then(() => this.pullNow());
    this.reading = run.catch(() => undefined);
    return run;
  }

  /**
   * The guest's page group response: it answers the oldest waiting group of (vrid, vpasid, grpid), exactly one;
   * ENOENT when none waits. `failure` reaches the host as invalid. A host that no longer knows the cookie (it
   * answered the group itself: timeout, teardown) is told nothing more: that group is answered either way.
   */
  async respond(r: GuestPageResponse): Promise<{ generation: number; host: string }> {
    const i = this.queue.findIndex((o) => o.vrid === r.vrid && o.vpasid === r.vpasid && o.grpid === r.grpid);
    if (i < 0) throw new KernelError('ENOENT', `no page request group ${r.grpid} of vrid 0x${r.vrid.toString(16)} vPASID ${r.vpasid} is waiting`);
    const [o] = this.queue.splice(i, 1);
    this.held -= o.requests.length;
    return { generation: o.generation, host: await this.answerHost(o.cookie, r.code === 'success' ? 'success' : 'invalid') };
  }

  /** Answers every waiting group `match` picks invalid (guest reset, unbind of a vPASID, VM death). */
  async drop(match: (r: VirtualPageRequest) => boolean): Promise<number> {
    const victims = this.queue.filter(match);
    for (const o of victims) {
      this.queue.splice(this.queue.indexOf(o), 1);
      this.held -= o.requests.length;
      await this.answerHost(o.cookie, 'invalid');
    }
    return victims.length;
  }

  /** The guest's view: every waiting group, oldest first (no host id, no cookie). */
  list(): VirtualPageRequest[] {
    return this.queue.map(({ seq, vrid, vpasid, grpid, requests }) => ({ seq, vrid, vpasid, grpid, requests: copyRequests(requests) }));
  }

  get overflows(): number {
    return this.overflowCount;
  }

  private async pullNow(): Promise<{ groups: PulledGroup[]; forwarded: VirtualPageRequest[] }> {
    const groups: PulledGroup[] = [];
    const forwarded: VirtualPageRequest[] = [];
    for (const g of await this.host.read()) {
      const vrid = this.names.vrid(g.bdf);
      const vpasid = this.names.vpasid(g.pasid);
      const base = { grpid: g.grpid, requests: g.requests.length, vrid, vpasid };
      if (vrid === null || vpasid === null) {
        await this.answerHost(g.cookie, 'invalid');
        groups.push({ ...base, outcome: 'not-this-vm' });
        continue;
      }
      if (this.held + g.requests.length > this.depth) {
        // A full page request queue: answered success so the device retries later, as VT-d hardware does (PRO).
        this.overflowCount++;
        await this.answerHost(g.cookie, 'success');
        groups.push({ ...base, outcome: 'overflow' });
        continue;
      }
      const k = key(vrid, vpasid, g.grpid);
      const generation = (this.generations.get(k) ?? 0) + 1;
      this.generations.set(k, generation);
      const o: Outstanding = { seq: ++this.seq, vrid, vpasid, grpid: g.grpid, requests: copyRequests(g.requests), generation, cookie: g.cookie };
      this.queue.push(o);
      this.held += o.requests.length;
      groups.push({ ...base, outcome: 'forwarded', seq: o.seq });
      forwarded.push(this.list().at(-1) as VirtualPageRequest);
    }
    return { groups, forwarded };
  }

  /** The host's answer to our response: 'answered', or the errno it refused with (the group is gone from the host). */
  private async answerHost(cookie: number, code: FaultResponseCode): Promise<string> {
    try {
      await this.host.respond(cookie, code);
      return 'answered';
    } catch (err) {
      return err instanceof KernelError ? err.errno : 'EIO';
    }
  }
}

function copyRequests(requests: ReadonlyArray<{ addr: number; perm: PagePerm; last: boolean }>): VirtualPageRequest['requests'] {
  return requests.map((r) => ({ addr: r.addr, perm: { ...r.perm }, last: r.last }));
}
