// The IOTLB's tag store (iotlb.ts keeps the translations and the LRU order): which slot caches (page table, page),
// and every slot of one page table, so a PASID-selective flush costs what that table caches. Fixed typed arrays
// sized by the capacity, chained hashing with intrusive links: a lookup, an insert, a flush and a refill allocate
// nothing (a JS Map per table allocated a backing store at every flush and refill, the 2-D miss's main cost).

/** No slot / no record (the end of a chain or a list). */
export const NONE = -1;

const HI = 0x1_0000_0000;

/** A number's two 32-bit halves mixed (ids and page numbers are below 2^53). */
function mix(x: number): number {
  const h = Math.imul((x | 0) ^ Math.imul((x / HI) | 0, 0x27d4_eb2d), 0x9e37_79b1);
  return h ^ (h >>> 15);
}
/** The bucket of tag (table, page), and of table's record. */
const slotBucket = (table: number, page: number, mask: number): number => (mix(page) ^ Math.imul(table | 0, 0x85eb_ca6b)) & mask;
const recordBucket = (table: number, mask: number): number => mix(table) & mask;

export class IotlbIndex {
  /** Each slot's tag (valid while the slot is in use). */
  readonly tableOf: Float64Array;
  readonly pageOf: Float64Array;
  /** Hash chain of the slot's bucket. */
  private readonly chain: Int32Array;
  private readonly buckets: Int32Array;
  private readonly mask: number;
  /** The slot's neighbours in its table's list, and that table's record. */
  private readonly tablePrev: Int32Array;
  private readonly tableNext: Int32Array;
  private readonly recordOf: Int32Array;
  // Table records (at most one per slot in use): id, first slot, slot count, bucket chain (free list when unused).
  private readonly recordTable: Float64Array;
  private readonly recordFirst: Int32Array;
  private readonly recordCount: Int32Array;
  private readonly recordChain: Int32Array;
  private readonly recordBuckets: Int32Array;
  private freeRecord = NONE;
  /** Records at and above this index were never used since the last clear(). */
  private freshRecord = 0;

  constructor(capacity: number) {
    let buckets = 1;
    while (buckets < 2 * capacity) buckets *= 2;
    this.mask = buckets - 1;
    this.tableOf = new Float64Array(capacity);
    this.pageOf = new Float64Array(capacity);
    this.chain = new Int32Array(capacity);
    this.buckets = new Int32Array(buckets);
    this.tablePrev = new Int32Array(capacity);
    this.tableNext = new Int32Array(capacity);
    this.recordOf = new Int32Array(capacity);
    this.recordTable = new Float64Array(capacity);
    this.recordFirst = new Int32Array(capacity);
    this.recordCount = new Int32Array(capacity);
    this.recordChain = new Int32Array(capacity);
    this.recordBuckets = new Int32Array(buckets);
    this.clear();
  }

  /** The slot tagged (table, page), or NONE. */
  find(table: number, page: number): number {
    let s = this.buckets[slotBucket(table, page, this.mask)];
    while (s !== NONE && (this.pageOf[s] !== page || this.tableOf[s] !== table)) s = this.chain[s];
    return s;
  }

  /** Tags `slot` (table, page); the caller made sure no slot has that tag. */
  add(slot: number, table: number, page: number): void {
    this.tableOf[slot] = table;
    this.pageOf[slot] = page;
    const b = slotBucket(table, page, this.mask);
    this.chain[slot] = this.buckets[b];
    this.buckets[b] = slot;
    let r = this.record(table);
    if (r === NONE) r = this.newRecord(table);
    const first = this.recordFirst[r];
    this.tablePrev[slot] = NONE;
    this.tableNext[slot] = first;
    if (first !== NONE) this.tablePrev[first] = slot;
    this.recordFirst[r] = slot;
    this.recordCount[r]++;
    this.recordOf[slot] = r;
  }

  /** Untags `slot` (it must be tagged); its table's record goes with its last slot. */
  remove(slot: number): void {
    const page = this.pageOf[slot];
    const b = slotBucket(this.tableOf[slot], page, this.mask);
    let s = this.buckets[b];
    if (s === slot) this.buckets[b] = this.chain[slot];
    else {
      while (this.chain[s] !== slot) s = this.chain[s];
      this.chain[s] = this.chain[slot];
    }
    const r = this.recordOf[slot];
    const prev = this.tablePrev[slot];
    const next = this.tableNext[slot];
    if (prev === NONE) this.recordFirst[r] = next;
    else this.tableNext[prev] = next;
    if (next !== NONE) this.tablePrev[next] = prev;
    if (--this.recordCount[r] === 0) this.dropRecord(r);
  }

  /** The first slot of table's list (NONE: it caches nothing); nextInTable walks on. */
  firstOf(table: number): number {
    const r = this.record(table);
    return r === NONE ? NONE : this.recordFirst[r];
  }

  nextInTable(slot: number): number {
    return this.tableNext[slot];
  }

  /** How many slots table has. */
  countOf(table: number): number {
    const r = this.record(table);
    return r === NONE ? 0 : this.recordCount[r];
  }

  /** Every table with a slot, ascending. */
  tables(): number[] {
    const out: number[] = [];
    for (let b = 0; b <= this.mask; b++) for (let r = this.recordBuckets[b]; r !== NONE; r = this.recordChain[r]) out.push(this.recordTable[r]);
    return out.sort((x, y) => x - y);
  }

  /** Nothing tagged (a full flush). */
  clear(): void {
    this.buckets.fill(NONE);
    this.recordBuckets.fill(NONE);
    this.freeRecord = NONE;
    this.freshRecord = 0;
  }

  private record(table: number): number {
    let r = this.recordBuckets[recordBucket(table, this.mask)];
    while (r !== NONE && this.recordTable[r] !== table) r = this.recordChain[r];
    return r;
  }

  private newRecord(table: number): number {
    let r = this.freeRecord;
    if (r === NONE) r = this.freshRecord++;
    else this.freeRecord = this.recordChain[r];
    const b = recordBucket(table, this.mask);
    this.recordTable[r] = table;
    this.recordFirst[r] = NONE;
    this.recordCount[r] = 0;
    this.recordChain[r] = this.recordBuckets[b];
    this.recordBuckets[b] = r;
    return r;
  }

  private dropRecord(r: number): void {
    const b = recordBucket(this.recordTable[r], this.mask);
    let x = this.recordBuckets[b];
    if (x === r) this.recordBuckets[b] = this.recordChain[r];
    else {
      while (this.recordChain[x] !== r) x = this.recordChain[x];
      this.recordChain[x] = this.recordChain[r];
    }
    this.recordChain[r] = this.freeRecord;
    this.freeRecord = r;
  }
}
