import type { WalkMemory } from './walk';

/**
 * Sparse 4 KiB-page memory for unit tests of paging code (and of anything built on it): a Map of pages,
 * a bump allocator of zeroed tables, and read/write logs. Not used by production code.
 */
export class TestPageMemory implements Required<WalkMemory> {
  readonly pages = new Map<number, Buffer>();
  readonly writes: number[] = [];
  readonly unreadable = new Set<number>();
  readonly readOnly = new Set<number>();
  private next: number;

  constructor(firstTable = 0x10_0000) {
    this.next = firstTable;
  }

  private page(address: number): Buffer {
    const base = address - (address % 4096);
    let p = this.pages.get(base);
    if (!p) this.pages.set(base, (p = Buffer.alloc(4096)));
    return p;
  }

  readU64(address: number): bigint | null {
    if (this.unreadable.has(address - (address % 4096))) return null;
    return this.page(address).readBigUInt64LE(address % 4096);
  }

  writeU64(address: number, value: bigint): boolean {
    if (this.readOnly.has(address - (address % 4096))) return false;
    this.writes.push(address);
    this.page(address).writeBigUInt64LE(value, address % 4096);
    return true;
  }

  allocTable = (): number => {
    const t = this.next;
    this.next += 4096;
    this.page(t);
    return t;
  };

  snapshot(): Map<number, string> {
    return new Map([...this.pages].map(([k, v]) => [k, v.toString('hex')]));
  }
}
