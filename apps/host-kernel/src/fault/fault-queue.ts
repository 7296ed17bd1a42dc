// A fault queue: the iommufd FAULT object (drivers/iommu/iommufd/eventq.c, iommufd_fault_fops_read/write). The
// page requests of nested page tables bound with it land here whole; the owner reads them (a group gets its
// response cookie when it is read) and answers by cookie. The IOMMU's page request queue stays the one registry of
// pending groups: when it answers one on its own (teardown, timeout) it tells the queue to forget it.
import { KernelError } from '@app/shared/errno';
import type { Tx } from '../fault-injection';
import type { FaultQueueObject } from '../ioasid/fault-queues';
import type { IopfGroup, PagePerm } from '../ioasid/pgtbl';

/** A group as its owner reads it (iommufd struct iommu_hwpt_pgfault, one per request, sharing the cookie). */
export interface FaultGroupView {
  cookie: number;
  bdf: string;
  pasid: number;
  grpid: number;
  requests: Array<{ addr: number; perm: PagePerm; last: boolean }>;
}

/** What the kernel state shows of a queue. */
export interface FaultQueueState {
  id: number;
  users: number;
  /** Groups not read yet, by the IOMMU's group number. */
  unread: number[];
  /** Cookies of groups read and not answered. */
  awaiting: number[];
}

export class FaultQueue implements FaultQueueObject {
  readonly owner: { readonly kind: 'queue'; readonly pid: number; readonly fd: number; readonly faultQueue: number };
  users = 0;
  /** Groups not read yet, oldest first (iommufd fault->deliver). */
  private readonly unread: IopfGroup[] = [];
  /** Groups read and not answered, by cookie (iommufd fault->response). */
  private readonly awaiting = new Map<number, IopfGroup>();
  /**
   * Cookies are never reused (iommufd's xa_alloc hands out the lowest free one): a late or repeated answer can then
   * never land on another group; it is EINVAL.
   */
  private nextCookie = 1;

  constructor(
    readonly id: number,
    pid: number,
    fd: number,
    /** The IOMMU answers every group this queue holds, invalid (the queue is going away). */
    private readonly answerHeld: (queue: FaultQueue) => void,
  ) {
    this.owner = { kind: 'queue', pid, fd, faultQueue: id };
  }

  handle(group: IopfGroup): 'queued' {
    this.unread.push(group);
    return 'queued';
  }

  forget(seq: number): void {
    const i = this.unread.findIndex((g) => g.seq === seq);
    if (i >= 0) this.unread.splice(i, 1);
    for (const [cookie, g] of this.awaiting) if (g.seq === seq) this.awaiting.delete(cookie);
  }

  /** read(): every unread group, whole, each with its new cookie; they now wait for their answer. */
  read(tx: Tx): FaultGroupView[] {
    const groups = [...this.unread];
    const first = this.nextCookie;
    tx.do(
      'fault.read',
      () => {
        this.unread.length = 0;
        groups.forEach((g, i) => this.awaiting.set(first + i, g));
        this.nextCookie = first + groups.length;
      },
      () => {
        groups.forEach((_g, i) => this.awaiting.delete(first + i));
        this.unread.unshift(...groups);
        this.nextCookie = first;
      },
    );
    return groups.map((g, i) => ({
      cookie: first + i,
      bdf: g.bdf,
      pasid: g.ppasid,
      grpid: g.grpid,
      requests: g.requests.map((r) => ({ addr: r.address, perm: { ...r.perm }, last: r.last })),
    }));
  }

  /** The group a response names (iommufd xa_erase of the cookie): EINVAL for a cookie unknown or already answered. */
  take(tx: Tx, cookie: number): IopfGroup {
    const group = Number.isSafeInteger(cookie) ? this.awaiting.get(cookie) : undefined;
    if (!group) throw new KernelError('EINVAL', `fault queue ${this.id} has no group waiting with cookie ${cookie}`);
    tx.do('fault.respond', () => this.awaiting.delete(cookie), () => this.awaiting.set(cookie, group));
    return group;
  }

  hold(tx: Tx): void {
    tx.do('fault.get', () => this.users++, () => this.users--);
  }

  put(tx: Tx): void {
    tx.do('fault.put', () => this.users--, () => this.users++);
  }

  /**
   * The queue goes (iommufd_fault_destroy): every group it holds, read or not, is answered invalid. Its page
   * tables are gone by then and their routes were drained, so this finds nothing unless something went wrong;
   * an answer already sent is a hardware effect and is not undone.
   */
  release(tx: Tx): void {
    tx.step('fault.release');
    this.answerHeld(this);
  }

  state(): FaultQueueState {
    return { id: this.id, users: this.users, unread: this.unread.map((g) => g.seq), awaiting: [...this.awaiting.keys()].sort((a, b) => a - b) };
  }
}
