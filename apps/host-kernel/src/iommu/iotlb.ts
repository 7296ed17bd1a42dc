import { KernelError } from '@app/shared/errno';
import { pageOffsetOf } from '@app/shared/x86/page-math';
import { PAGE_SIZE } from '@app/shared/x86/x86.constants';
import { IOTLB_DEFAULT_CAPACITY } from './iommu.constants';
import { IotlbIndex, NONE } from './iotlb-index';
import { PdeCache } from './pde-cache';

/** A cached final translation of one 4 KiB page. */
export interface IotlbEntry {
  hpaPage: number;
  read: boolean;
  write: boolean;
  /** U/S of the first stage (true where there is none): a supervisor page must not serve a user request. */
  user: boolean;
}

/** What a request needs from an entry; privileged = PR set (supervisor request). */
export interface IotlbAccess {
  write: boolean;
  privileged?: boolean;
}

export interface IotlbStats {
  hits: number;
  misses: number;
  evictions: number;
  entries: number;
  capacity: number;
}

const READ = 1;
const WRITE = 2;
const USER = 4;

/**
 * IOTLB keyed by (page-table id, page number), like VT-d's (DID, PASID, address) tag, in numbers: the tag store
 * (iotlb-index.ts, a hash and a list per table in fixed typed arrays) names a slot of fixed arrays (translation,
 * permissions, the LRU links). Bounded with exact LRU eviction: a hit moves its slot to the head of an intrusive
 * doubly-linked list (two index writes; nothing is copied, re-keyed or allocated), a full IOTLB evicts the tail.
 * Nothing allocates after construction, flushes and refills included. Only software invalidation removes an
 * entry early: a page table changed without INVALIDATE keeps translating through the stale entry, as hardware does.
 * Beside it, the first-stage walks' paging-structure cache (pde-cache.ts), flushed by the same invalidations.
 */
export class Iotlb {
  readonly pde = new PdeCache();
  private readonly index: IotlbIndex;
  private readonly hpaOf: Float64Array;
  private readonly permOf: Uint8Array;
  /** LRU links (slot indexes; NONE at the ends); a free slot's `next` chains the free list. */
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  private head = NONE;
  private tail = NONE;
  private free = NONE;
  /** Slots at and above this index have not been used since the last full flush. */
  private fresh = 0;
  private size = 0;
  private hits = 0;
  private misses = 0;
  private evictions = 0;

  constructor(readonly capacity: number = IOTLB_DEFAULT_CAPACITY) {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 2 ** 24) throw new KernelError('EINVAL', `IOTLB capacity ${capacity} must be a positive integer`);
    this.index = new IotlbIndex(capacity);
    this.hpaOf = new Float64Array(capacity);
    this.permOf = new Uint8Array(capacity);
    this.prev = new Int32Array(capacity);
    this.next = new Int32Array(capacity);
    this.resetSlots();
  }

  /**
   * The hot path: the cached page frame of `address` for a request needing `write` (and U/S for a user request),
   * or -1. An entry lacking the permission is a miss (the caller re-walks, and faults or re-caches).
   */
  hit(pgtblId: number, address: number, write: boolean, privileged: boolean): number {
    const slot = this.index.find(pgtblId, Math.floor(address / PAGE_SIZE));
    if (slot === NONE || !this.permits(slot, write, privileged)) {
      this.misses++;
      return -1;
    }
    this.touch(slot);
    return this.hpaOf[slot];
  }

  /** The cached entry for address's page, or null; with `access`, an entry lacking it is a miss (as hit()). */
  lookup(pgtblId: number, address: number, access?: IotlbAccess): IotlbEntry | null {
    const slot = this.index.find(pgtblId, Math.floor(address / PAGE_SIZE));
    if (slot === NONE || (access && !this.permits(slot, access.write, access.privileged === true))) {
      this.misses++;
      return null;
    }
    this.touch(slot);
    return this.entryAt(slot);
  }

  insert(pgtblId: number, address: number, entry: IotlbEntry): void {
    this.insertPage(pgtblId, address, entry.hpaPage, entry.read, entry.write, entry.user);
  }

  /** insert() without an entry object (the walk's result, straight from translate). */
  insertPage(pgtblId: number, address: number, hpaPage: number, read: boolean, write: boolean, user: boolean): void {
    if (!Number.isSafeInteger(hpaPage) || hpaPage < 0 || pageOffsetOf(hpaPage) !== 0) {
      throw new KernelError('EINVAL', `IOTLB entry hpa ${hpaPage} is not page aligned`);
    }
    const page = Math.floor(address / PAGE_SIZE);
    const old = this.index.find(pgtblId, page);
    if (old !== NONE) this.removeSlot(old);
    while (this.size >= this.capacity) {
      this.removeSlot(this.tail);
      this.evictions++;
    }
    let slot = this.free;
    if (slot === NONE) slot = this.fresh++;
    else this.free = this.next[slot];
    this.index.add(slot, pgtblId, page);
    this.hpaOf[slot] = hpaPage;
    this.permOf[slot] = (read ? READ : 0) | (write ? WRITE : 0) | (user ? USER : 0);
    this.pushHead(slot);
    this.size++;
  }

  /**
   * invalidate() flushes everything; invalidate(id) one page table (VT-d PASID-selective); invalidate(id, iova,
   * length) the pages overlapping [iova, iova+length) (page-selective). Returns the number of entries removed.
   */
  invalidate(pgtblId?: number, iova?: number, length?: number): number {
    if (pgtblId === undefined) {
      this.pde.invalidate();
      const n = this.size;
      this.index.clear();
      this.resetSlots();
      return n;
    }
    if (iova === undefined && length === undefined) {
      this.pde.invalidate(pgtblId);
      let n = 0;
      for (let slot = this.index.firstOf(pgtblId); slot !== NONE; n++) {
        const next = this.index.nextInTable(slot);
        this.removeSlot(slot);
        slot = next;
      }
      return n;
    }
    if (iova === undefined || length === undefined || !Number.isSafeInteger(iova) || iova < 0 || !Number.isSafeInteger(length) || length < 1) {
      throw new KernelError('EINVAL', `IOTLB invalidation range [${iova}, +${length}) is not a non-empty range`);
    }
    // A page-selective flush drops the table's whole paging-structure cache (VT-d with IH = 0); not counted in n.
    this.pde.invalidate(pgtblId);
    const cached = this.index.countOf(pgtblId);
    if (cached === 0) return 0;
    const first = Math.floor(iova / PAGE_SIZE);
    const last = Math.floor((iova + length - 1) / PAGE_SIZE);
    let n = 0;
    if (last - first + 1 <= cached) {
      for (let page = first; page <= last; page++) {
        const slot = this.index.find(pgtblId, page);
        if (slot === NONE) continue;
        this.removeSlot(slot);
        n++;
      }
      return n;
    }
    for (let slot = this.index.firstOf(pgtblId); slot !== NONE; ) {
      const next = this.index.nextInTable(slot);
      const page = this.index.pageOf[slot];
      if (page >= first && page <= last) {
        this.removeSlot(slot);
        n++;
      }
      slot = next;
    }
    return n;
  }

  /** The page tables that have cached translations or paging-structure entries now (audits: none of a freed PASID's). */
  tables(): number[] {
    const ids = this.index.tables();
    for (const id of this.pde.tables()) if (!ids.includes(id)) ids.push(id);
    return ids;
  }

  get stats(): IotlbStats {
    return { hits: this.hits, misses: this.misses, evictions: this.evictions, entries: this.size, capacity: this.capacity };
  }

  /** Every cached (table, page), most recently used first (tests: the LRU order). */
  order(): Array<{ pgtblId: number; page: number }> {
    const out: Array<{ pgtblId: number; page: number }> = [];
    for (let s = this.head; s !== NONE; s = this.next[s]) out.push({ pgtblId: this.index.tableOf[s], page: this.index.pageOf[s] });
    return out;
  }

  private permits(slot: number, write: boolean, privileged: boolean): boolean {
    const perm = this.permOf[slot];
    return (perm & (write ? WRITE : READ)) !== 0 && (privileged || (perm & USER) !== 0);
  }

  /** A hit: the slot becomes the most recently used. */
  private touch(slot: number): void {
    this.hits++;
    if (slot === this.head) return;
    this.unlink(slot);
    this.pushHead(slot);
  }

  private entryAt(slot: number): IotlbEntry {
    const perm = this.permOf[slot];
    return { hpaPage: this.hpaOf[slot], read: (perm & READ) !== 0, write: (perm & WRITE) !== 0, user: (perm & USER) !== 0 };
  }

  /** Out of the tag store and the LRU list, back on the free list. */
  private removeSlot(slot: number): void {
    this.index.remove(slot);
    this.releaseSlot(slot);
  }

  /** Out of the LRU list, back on the free list. */
  private releaseSlot(slot: number): void {
    this.unlink(slot);
    this.next[slot] = this.free;
    this.free = slot;
    this.size--;
  }

  private unlink(slot: number): void {
    const p = this.prev[slot];
    const n = this.next[slot];
    if (p === NONE) this.head = n;
    else this.next[p] = n;
    if (n === NONE) this.tail = p;
    else this.prev[n] = p;
  }

  private pushHead(slot: number): void {
    this.prev[slot] = NONE;
    this.next[slot] = this.head;
    if (this.head !== NONE) this.prev[this.head] = slot;
    this.head = slot;
    if (this.tail === NONE) this.tail = slot;
  }

  /** Every slot unused: the free list empty, slots from `fresh` on never handed out since. O(1). */
  private resetSlots(): void {
    this.head = NONE;
    this.tail = NONE;
    this.free = NONE;
    this.fresh = 0;
    this.size = 0;
  }
}
