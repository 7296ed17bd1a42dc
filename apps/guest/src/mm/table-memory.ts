// The guest's page-table pages, cached write-through. Guest memory sits behind an async port while the
// shared walker/mapper is synchronous, so the guest keeps every page-table page it owns in this cache
// (it is the only writer of its tables), edits it synchronously, then flushes the dirty pages to guest
// RAM before the change is used. A walk never reads RAM: a table page not in the cache reads as null.
// Accessed/dirty bits the IOMMU may set in RAM are not mirrored here (the guest does not use them) and
// can be overwritten by a later flush of the same page.
import type { WalkMemory } from '@app/shared/x86/walk';
import type { VmmPort } from '../vmm.port';
import { PAGE_SIZE } from './mm.constants';

export class TableMemory implements Required<WalkMemory> {
  private readonly pages = new Map<number, Buffer>();
  private readonly dirty = new Set<number>();
  /** Pages that no live entry reached before the current flush: written first, so no walker sees a stale one. */
  private readonly fresh = new Set<number>();

  /** A new, zeroed table page at `gpa` (a frame the caller allocated). */
  adopt(gpa: number): void {
    this.pages.set(gpa, Buffer.alloc(PAGE_SIZE));
    this.dirty.add(gpa);
    this.fresh.add(gpa);
  }

  forget(gpa: number): void {
    this.pages.delete(gpa);
    this.dirty.delete(gpa);
    this.fresh.delete(gpa);
  }

  has(gpa: number): boolean {
    return this.pages.has(gpa);
  }

  get size(): number {
    return this.pages.size;
  }

  readU64(address: number): bigint | null {
    const page = this.pages.get(address - (address % PAGE_SIZE));
    if (!page || address % 8 !== 0) return null;
    return page.readBigUInt64LE(address % PAGE_SIZE);
  }

  writeU64(address: number, value: bigint): boolean {
    const base = address - (address % PAGE_SIZE);
    const page = this.pages.get(base);
    if (!page || address % 8 !== 0) return false;
    page.writeBigUInt64LE(value, address % PAGE_SIZE);
    this.dirty.add(base);
    return true;
  }

  /** A read-only view for walks that must not set A/D bits. */
  readOnly(): WalkMemory {
    return { readU64: (a) => this.readU64(a) };
  }

  /** Writes every dirty page to guest RAM: fresh tables first, then the pages whose entries link them. */
  async flush(port: Pick<VmmPort, 'writeMemory'>): Promise<void> {
    const order = [...this.dirty].sort((a, b) => Number(this.fresh.has(b)) - Number(this.fresh.has(a)) || a - b);
    for (const gpa of order) {
      const page = this.pages.get(gpa);
      if (!page) continue;
      await port.writeMemory(gpa, Buffer.from(page));
      this.dirty.delete(gpa);
      this.fresh.delete(gpa);
    }
  }
}
