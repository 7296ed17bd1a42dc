// The IOMMU's paging-structure cache for first-stage walks, at the PDE level (VT-d §6.2.4: a PDE-cache entry
// holds what the walk found above a page table: that table's address and R/W, U/S of the levels that led to it).
// A nested walk that hits it reads only the PTE: the three walks of one descriptor share their 2 MiB region, so
// after a full 2-D miss the second and third read one entry each instead of four.
//
// What it holds, and so when it goes stale, follows VT-d:
// - Only present non-leaf entries are cached: a PDE the guest fills after a fault is seen at the next walk.
// - The cached address is the PT's GPA (what the guest wrote), never its HPA: every PT read still goes through
//   the second stage (the parent's IOTLB and table), so a stale entry can only name the guest's own memory.
// - Entries are tagged with the page table id and its root: a table re-rooted under the same id misses.
// - Every IOTLB invalidation of a table drops all of that table's entries, page-selective ones included (VT-d
//   invalidates the paging-structure caches of the PASID unless the hint IH is set, and Linux never sets it for
//   SVA), and a global one drops everything. A guest that changes a present PDE without invalidating keeps
//   walking the old PT, as on hardware.
// Direct-mapped, in fixed typed arrays: a lookup and an insert allocate nothing; a collision replaces the slot.

/** Slots (a power of two): hardware PDE caches hold tens of entries. */
export const PDE_CACHE_SLOTS = 64;
/** A PDE maps 2 MiB: 512 pages of 4 KiB. */
const REGION_SIZE = 512 * 4096;
/** slotOf keeps the top log2(PDE_CACHE_SLOTS) bits of its hash. */
const SLOT_SHIFT = 32 - Math.log2(PDE_CACHE_SLOTS);
const EMPTY = -1;
const WRITABLE = 1;
const USER = 2;

export interface PdeCacheStats {
  hits: number;
  misses: number;
  entries: number;
}

export class PdeCache {
  /** The page table id of each slot, EMPTY when unused. */
  private readonly tableOf = new Float64Array(PDE_CACHE_SLOTS).fill(EMPTY);
  private readonly rootOf = new Float64Array(PDE_CACHE_SLOTS);
  private readonly regionOf = new Float64Array(PDE_CACHE_SLOTS);
  /** The PT's address (a GPA for a nested table) and R/W, U/S ANDed over levels 4–2. */
  private readonly ptOf = new Float64Array(PDE_CACHE_SLOTS);
  private readonly permOf = new Uint8Array(PDE_CACHE_SLOTS);
  private size = 0;
  private hits = 0;
  private misses = 0;

  /** The slot caching the PDE that maps `address` under (pgtblId, root), or -1. */
  find(pgtblId: number, root: number, address: number): number {
    const region = Math.floor(address / REGION_SIZE);
    const slot = slotOf(pgtblId, region);
    if (this.tableOf[slot] !== pgtblId || this.regionOf[slot] !== region || this.rootOf[slot] !== root) {
      this.misses++;
      return -1;
    }
    this.hits++;
    return slot;
  }

  /** The PT a found slot names, and the R/W, U/S of the levels above it. */
  pt(slot: number): number {
    return this.ptOf[slot];
  }
  writable(slot: number): boolean {
    return (this.permOf[slot] & WRITABLE) !== 0;
  }
  user(slot: number): boolean {
    return (this.permOf[slot] & USER) !== 0;
  }

  /** Caches the PDE of a walk that got past level 2 (replacing whatever shared its slot). */
  insert(pgtblId: number, root: number, address: number, pt: number, writable: boolean, user: boolean): void {
    const region = Math.floor(address / REGION_SIZE);
    const slot = slotOf(pgtblId, region);
    if (this.tableOf[slot] === EMPTY) this.size++;
    this.tableOf[slot] = pgtblId;
    this.rootOf[slot] = root;
    this.regionOf[slot] = region;
    this.ptOf[slot] = pt;
    this.permOf[slot] = (writable ? WRITABLE : 0) | (user ? USER : 0);
  }

  /** Drops every entry of pgtblId, or every entry; returns how many. */
  invalidate(pgtblId?: number): number {
    if (this.size === 0) return 0;
    let n = 0;
    for (let slot = 0; slot < PDE_CACHE_SLOTS; slot++) {
      const table = this.tableOf[slot];
      if (table === EMPTY || (pgtblId !== undefined && table !== pgtblId)) continue;
      this.tableOf[slot] = EMPTY;
      n++;
    }
    this.size -= n;
    return n;
  }

  /** The page tables with cached entries now (audits: none of a freed PASID's). */
  tables(): number[] {
    const ids = new Set<number>();
    for (const table of this.tableOf) if (table !== EMPTY) ids.add(table);
    return [...ids];
  }

  get stats(): PdeCacheStats {
    return { hits: this.hits, misses: this.misses, entries: this.size };
  }
}

/** The slot of (table, region): both mixed, the top bits taken. */
function slotOf(pgtblId: number, region: number): number {
  return Math.imul((region | 0) ^ Math.imul(pgtblId | 0, 0x85eb_ca6b), 0x9e37_79b1) >>> SLOT_SHIFT;
}
