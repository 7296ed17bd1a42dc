import { KernelError } from '@app/shared/errno';
import { PAGE_SIZE } from '@app/shared/x86/pte';
import { IOTLB_DEFAULT_CAPACITY } from './iommu.constants';

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

const key = (pgtblId: number, page: number): string => `${pgtblId}:${page}`;

/**
 * IOTLB keyed by (page-table id, page number), like VT-d's (DID, PASID, address) tag. Bounded with LRU eviction
 * (a Map keeps insertion order; a hit re-inserts). Only software invalidation removes an entry early: a page
 * table changed without INVALIDATE keeps translating through the stale entry, as hardware does.
 */
export class Iotlb {
  private readonly lru = new Map<string, { pgtblId: number; page: number; entry: IotlbEntry }>();
  private readonly byTable = new Map<number, Map<number, IotlbEntry>>();
  private hits = 0;
  private misses = 0;
  private evictions = 0;

  constructor(readonly capacity: number = IOTLB_DEFAULT_CAPACITY) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new KernelError('EINVAL', `IOTLB capacity ${capacity} must be a positive integer`);
  }

  /**
   * The cached entry for address's page, or null. With `access`, an entry lacking the permission is a miss:
   * write/read, and U/S for a user (non-privileged) request, which then re-walks and faults.
   */
  lookup(pgtblId: number, address: number, access?: IotlbAccess): IotlbEntry | null {
    const page = Math.floor(address / PAGE_SIZE);
    const k = key(pgtblId, page);
    const slot = this.lru.get(k);
    if (!slot || (access && (!(access.write ? slot.entry.write : slot.entry.read) || (!access.privileged && !slot.entry.user)))) {
      this.misses++;
      return null;
    }
    this.hits++;
    this.lru.delete(k);
    this.lru.set(k, slot);
    return { ...slot.entry };
  }

  insert(pgtblId: number, address: number, entry: IotlbEntry): void {
    if (!Number.isSafeInteger(entry.hpaPage) || entry.hpaPage < 0 || entry.hpaPage % PAGE_SIZE !== 0) {
      throw new KernelError('EINVAL', `IOTLB entry hpa ${entry.hpaPage} is not page aligned`);
    }
    const page = Math.floor(address / PAGE_SIZE);
    const k = key(pgtblId, page);
    this.remove(k);
    while (this.lru.size >= this.capacity) {
      const oldest = this.lru.keys().next().value as string;
      this.remove(oldest);
      this.evictions++;
    }
    const copy = { ...entry };
    this.lru.set(k, { pgtblId, page, entry: copy });
    let pages = this.byTable.get(pgtblId);
    if (!pages) this.byTable.set(pgtblId, (pages = new Map()));
    pages.set(page, copy);
  }

  /**
   * invalidate() flushes everything; invalidate(id) one page table (VT-d PASID-selective); invalidate(id, iova,
   * length) the pages overlapping [iova, iova+length) (page-selective). Returns the number of entries removed.
   */
  invalidate(pgtblId?: number, iova?: number, length?: number): number {
    if (pgtblId === undefined) {
      const n = this.lru.size;
      this.lru.clear();
      this.byTable.clear();
      return n;
    }
    const pages = this.byTable.get(pgtblId);
    if (iova === undefined && length === undefined) {
      if (!pages) return 0;
      const n = pages.size;
      for (const page of [...pages.keys()]) this.remove(key(pgtblId, page));
      return n;
    }
    if (iova === undefined || length === undefined || !Number.isSafeInteger(iova) || iova < 0 || !Number.isSafeInteger(length) || length < 1) {
      throw new KernelError('EINVAL', `IOTLB invalidation range [${iova}, +${length}) is not a non-empty range`);
    }
    if (!pages) return 0;
    const first = Math.floor(iova / PAGE_SIZE);
    const last = Math.floor((iova + length - 1) / PAGE_SIZE);
    let n = 0;
    if (last - first + 1 <= pages.size) {
      for (let page = first; page <= last; page++) if (this.remove(key(pgtblId, page))) n++;
    } else {
      for (const page of [...pages.keys()]) if (page >= first && page <= last && this.remove(key(pgtblId, page))) n++;
    }
    return n;
  }

  /** The page tables that have cached translations now (audits: none of a freed PASID's). */
  tables(): number[] {
    return [...this.byTable.keys()];
  }

  get stats(): IotlbStats {
    return { hits: this.hits, misses: this.misses, evictions: this.evictions, entries: this.lru.size, capacity: this.capacity };
  }

  private remove(k: string): boolean {
    const slot = this.lru.get(k);
    if (!slot) return false;
    this.lru.delete(k);
    const pages = this.byTable.get(slot.pgtblId);
    pages?.delete(slot.page);
    if (pages && pages.size === 0) this.byTable.delete(slot.pgtblId);
    return true;
  }
}
