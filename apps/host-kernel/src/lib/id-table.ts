// Objects by small integer id: a two-level table of 1,024-slot chunks, each created when an id first reaches it.
// It plays the xarray the Linux ioasid code keeps its ioasids in: a lookup is two array reads, with no hashing, and
// one slot costs 4 bytes where a Map entry costs about 24 and grows by rehashing the whole table.

const SHIFT = 10;
const CHUNK = 1 << SHIFT;
const MASK = CHUNK - 1;

export class IdTable<T> {
  private readonly chunks: Array<Array<T | undefined> | undefined>;
  /** How many values each chunk holds: values() reads a chunk only up to its last one. */
  private readonly counts: Uint16Array;
  private count = 0;

  /** Ids in [0, capacity). */
  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 2 ** 31) throw new RangeError(`IdTable capacity ${capacity}`);
    this.chunks = new Array<Array<T | undefined> | undefined>(Math.ceil(capacity / CHUNK)).fill(undefined);
    this.counts = new Uint16Array(this.chunks.length);
  }

  /** How many ids hold a value. */
  get size(): number {
    return this.count;
  }

  /** The value at `id`; undefined for an empty slot and for anything that is not an id of this table. */
  get(id: number): T | undefined {
    if (id >>> 0 !== id) return undefined;
    const chunk = this.chunks[id >>> SHIFT];
    return chunk === undefined ? undefined : chunk[id & MASK];
  }

  set(id: number, value: T): void {
    if (id >>> 0 !== id || id >= this.capacity) throw new RangeError(`id ${id} is outside [0, ${this.capacity})`);
    let chunk = this.chunks[id >>> SHIFT];
    if (chunk === undefined) chunk = this.chunks[id >>> SHIFT] = new Array<T | undefined>(CHUNK).fill(undefined);
    if (chunk[id & MASK] === undefined) {
      this.count++;
      this.counts[id >>> SHIFT]++;
    }
    chunk[id & MASK] = value;
  }

  /** Empties the slot; true when it held a value. */
  delete(id: number): boolean {
    const chunk = id >>> 0 === id ? this.chunks[id >>> SHIFT] : undefined;
    if (chunk === undefined || chunk[id & MASK] === undefined) return false;
    chunk[id & MASK] = undefined;
    this.count--;
    this.counts[id >>> SHIFT]--;
    return true;
  }

  /**
   * Every value, in id order, as a new array. Each chunk is read up to its last value (ids are handed out lowest
   * first, so that is where the live ones are): a generator over whole chunks took 20 µs for 59 ioasids, and the
   * fuzzer's checks list every ioasid at every step.
   */
  values(): T[] {
    const out: T[] = [];
    for (let c = 0; c < this.chunks.length; c++) {
      const chunk = this.chunks[c];
      let left = this.counts[c];
      if (chunk === undefined) continue;
      for (let i = 0; left > 0; i++) {
        const value = chunk[i];
        if (value === undefined) continue;
        out.push(value);
        left--;
      }
    }
    return out;
  }
}
