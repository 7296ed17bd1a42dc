// The lowest-free id allocator (the ida/xarray analogue of Linux lib/idr.c): PASIDs and physical frames both draw from one.
const FULL = 0xffffffff;

/** Index of the lowest clear bit of a 32-bit word, or -1 if every bit is set. */
function lowestClearBit(word: number): number {
  const inverted = ~word;
  if (inverted === 0) return -1;
  return 31 - Math.clz32(inverted & -inverted);
}

/**
 * Lowest-free id allocator over [0, capacity): a bitmap of 32-bit words with a summary tree on top
 * (a bit set one level up means "that word below is full"). alloc/free/reserve touch one word per
 * level: ceil(log32(capacity)) words, i.e. 4 for the 2^20 PASID space, however full it is.
 */
export class IdAllocator {
  /** levels[0] is the bitmap proper (1 = in use); the last level is a single word. */
  private readonly levels: Uint32Array[] = [];
  private inUse = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`bad capacity ${capacity}`);
    let bits = capacity;
    for (;;) {
      const words = Math.ceil(bits / 32);
      const level = new Uint32Array(words);
      // Bits past the end read as "in use" so the descent never picks them.
      for (let bit = bits; bit < words * 32; bit++) level[bit >>> 5] |= 1 << (bit & 31);
      if (this.levels.length > 0) {
        const below = this.levels[this.levels.length - 1];
        for (let i = 0; i < below.length; i++) if (below[i] === FULL) level[i >>> 5] |= 1 << (i & 31);
      }
      this.levels.push(level);
      if (words === 1) break;
      bits = words;
    }
  }

  get used(): number {
    return this.inUse;
  }

  get free(): number {
    return this.capacity - this.inUse;
  }

  isUsed(id: number): boolean {
    this.check(id);
    return (this.levels[0][id >>> 5] & (1 << (id & 31))) !== 0;
  }

  /** The lowest free id (now in use), or null when every id is taken. */
  alloc(): number | null {
    let index = 0;
    for (let l = this.levels.length - 1; l >= 0; l--) {
      const bit = lowestClearBit(this.levels[l][index]);
      if (bit < 0) return null;
      index = index * 32 + bit;
    }
    this.setBit(index);
    return index;
  }

  /** Take one specific id (it must be free). */
  reserve(id: number): void {
    if (this.isUsed(id)) throw new RangeError(`id ${id} already in use`);
    this.setBit(id);
  }

  release(id: number): void {
    if (!this.isUsed(id)) throw new RangeError(`id ${id} is not in use`);
    this.inUse--;
    let index = id;
    for (const level of this.levels) {
      const word = index >>> 5;
      const wasFull = level[word] === FULL;
      level[word] &= ~(1 << (index & 31));
      if (!wasFull) break;
      index = word;
    }
  }

  private setBit(id: number): void {
    this.inUse++;
    let index = id;
    for (const level of this.levels) {
      const word = index >>> 5;
      level[word] |= 1 << (index & 31);
      if (level[word] !== FULL) break;
      index = word;
    }
  }

  private check(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.capacity) throw new RangeError(`id ${id} out of [0, ${this.capacity})`);
  }
}
