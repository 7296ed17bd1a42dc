// The fault queues of one ioasid fd, as the fd holds them: iommufd keeps its FAULT objects in the same object
// table as its hwpts, by id, with typed lookups (ENOENT) and a users count that makes destroy EBUSY. The queue
// itself (what it holds, reading, answering) is fault/fault-queue.ts; the ioasid layer only counts users.
import { KernelError } from '@app/shared/errno';
import type { Tx } from '../fault-injection';
import type { IopfHandler } from './pgtbl';

/** A fault queue as its ioasid fd and its page tables see it. */
export interface FaultQueueObject extends IopfHandler {
  readonly id: number;
  /** Live page tables bound with it (each took a reference at BIND_PGTBL, dropped at DESTROY). */
  readonly users: number;
  hold(tx: Tx): void;
  put(tx: Tx): void;
  /** The queue goes (destroyed, or its fd closed): every group it still holds is answered invalid. */
  release(tx: Tx): void;
}

export class FaultQueueTable {
  private readonly queues = new Map<number, FaultQueueObject>();

  constructor(private readonly fd: number) {}

  /** The id the next queue gets: the lowest free one from 1 (iommufd's xa_alloc of object ids). */
  nextId(): number {
    let id = 1;
    while (this.queues.has(id)) id++;
    return id;
  }

  insert(tx: Tx, queue: FaultQueueObject): void {
    tx.do('fault.insert', () => this.queues.set(queue.id, queue), () => this.queues.delete(queue.id));
  }

  /** A queue of this fd; ENOENT otherwise (an id of another fd's queue included). */
  lookup(id: number): FaultQueueObject {
    const queue = this.queues.get(id);
    if (!queue) throw new KernelError('ENOENT', `fault queue ${id} does not exist in ioasid fd ${this.fd}`);
    return queue;
  }

  /** Destroy: EBUSY while a page table uses it (iommufd: the hwpt holds a users reference on its fault object). */
  destroy(tx: Tx, id: number): void {
    const queue = this.lookup(id);
    if (queue.users > 0) throw new KernelError('EBUSY', `fault queue ${id} is used by ${queue.users} page table(s)`);
    this.remove(tx, queue);
  }

  /** fd close, after every page table is gone: each queue is released and dropped. */
  releaseAll(tx: Tx): void {
    for (const queue of [...this.queues.values()]) this.remove(tx, queue);
  }

  all(): FaultQueueObject[] {
    return [...this.queues.values()].sort((a, b) => a.id - b.id);
  }

  private remove(tx: Tx, queue: FaultQueueObject): void {
    queue.release(tx);
    tx.do('fault.remove', () => this.queues.delete(queue.id), () => this.queues.set(queue.id, queue));
  }
}
