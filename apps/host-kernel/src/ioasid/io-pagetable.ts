import { KernelError } from '@app/shared/errno';
import { Tx } from '../fault-injection';
import { AddressSpace } from '../memory/address-space';
import { PAGE_SIZE, pageAligned, pageIndex, pageOffset } from '../memory/memory.constants';
import { IOVA_LIMIT } from './ioasid.constants';
import { IovaPageTableHandle, IovaTranslation } from './pgtbl';

export interface MapArgs {
  iova: number;
  hva: number;
  length: number;
  read: boolean;
  write: boolean;
}

/** A contiguous IOVA range mapped by one MAP call (iommufd struct iopt_area); never split. */
interface Area {
  iova: number;
  length: number;
  read: boolean;
  write: boolean;
  pfns: number[];
  /** The address space whose pages the area pins (its pin count goes down with the area). */
  mm: AddressSpace;
}

/**
 * An `iova` page table with the iommufd IOAS_MAP/UNMAP rules (drivers/iommu/iommufd/io_pagetable.c):
 * fixed-IOVA maps of page-aligned ranges, EEXIST on overlap, unmap only of whole areas. Each mapped
 * page pins its frame until unmapped. Unlike iommufd, a failing unmap removes nothing.
 */
export class IovaPageTable implements IovaPageTableHandle {
  readonly kind = 'iova';
  destroyed = false;
  /** An IOAS pins what it maps: it takes no page requests (they are answered invalid at once). */
  readonly iopf = null;
  private readonly areas: Area[] = []; // sorted by iova, disjoint
  /** page → its translation at the page's first byte, one frozen object per mapped page (lookup hands it out as is). */
  private readonly pages = new Map<number, Readonly<IovaTranslation>>();

  constructor(
    readonly id: number,
    readonly ppasid: number,
  ) {}

  /**
   * iova's translation. A page-aligned iova (every second-stage walk of the IOMMU) gets the page's own entry, so the
   * data plane allocates nothing; another one a copy with the offset added.
   */
  lookup(iova: number): Readonly<IovaTranslation> | null {
    if (this.destroyed) return null;
    const page = this.pages.get(pageIndex(iova));
    if (!page) return null;
    const offset = pageOffset(iova);
    return offset === 0 ? page : { hpa: page.hpa + offset, read: page.read, write: page.write };
  }

  get mappedBytes(): number {
    return this.areas.reduce((sum, a) => sum + a.length, 0);
  }

  get areaCount(): number {
    return this.areas.length;
  }

  /**
   * The frame behind every mapped page, to `visit` until it answers false (audits: each one belongs to the address
   * space that pinned it). Nothing is allocated per page: the fuzzer's isolation check reads every table at every step.
   */
  forEachMappedFrame(visit: (iova: number, pfn: number) => boolean): void {
    for (const [page, p] of this.pages) if (!visit(page * PAGE_SIZE, p.hpa / PAGE_SIZE)) return;
  }

  map(tx: Tx, mm: AddressSpace, a: MapArgs): number {
    if (typeof a.read !== 'boolean' || typeof a.write !== 'boolean' || (!a.read && !a.write)) {
      throw new KernelError('EINVAL', `ioasid ${this.ppasid}: map needs read and/or write permission`);
    }
    if (!pageAligned(a.iova) || !pageAligned(a.hva) || !pageAligned(a.length) || a.length === 0) {
      throw new KernelError('EINVAL', `ioasid ${this.ppasid}: iova, hva and length must be non-zero multiples of ${PAGE_SIZE}`);
    }
    if (a.iova + a.length > IOVA_LIMIT) {
      throw new KernelError('EOVERFLOW', `ioasid ${this.ppasid}: [0x${a.iova.toString(16)}, +${a.length}) exceeds the 48-bit IOVA space`);
    }
    const at = this.firstEndingAfter(a.iova);
    const next = this.areas[at];
    if (next && next.iova < a.iova + a.length) {
      throw new KernelError('EEXIST', `ioasid ${this.ppasid}: iova [0x${a.iova.toString(16)}, +${a.length}) overlaps the area at 0x${next.iova.toString(16)}`);
    }
    const pfns = mm.pinRange(tx, a.hva, a.length); // EFAULT if not mapped, ENOMEM; pins undo themselves
    const area: Area = { iova: a.iova, length: a.length, read: a.read, write: a.write, pfns, mm };
    tx.do('iopt.insert-area', () => this.insertArea(at, area), () => this.removeArea(area));
    return a.iova;
  }

  /** Unmap whole areas inside [iova, iova + length); partial cover or nothing there → ENOENT. */
  unmap(tx: Tx, iova: number, length: number): number {
    if (!Number.isSafeInteger(iova) || !Number.isSafeInteger(length) || iova < 0 || length <= 0) {
      throw new KernelError('EINVAL', `ioasid ${this.ppasid}: unmap needs iova >= 0 and length > 0`);
    }
    const last = iova + length;
    const hit: Area[] = [];
    for (let i = this.firstEndingAfter(iova); i < this.areas.length && this.areas[i].iova < last; i++) {
      const area = this.areas[i];
      if (area.iova < iova || area.iova + area.length > last) {
        throw new KernelError('ENOENT', `ioasid ${this.ppasid}: unmap [0x${iova.toString(16)}, +${length}) would split the area [0x${area.iova.toString(16)}, +${area.length})`);
      }
      hit.push(area);
    }
    if (hit.length === 0) throw new KernelError('ENOENT', `ioasid ${this.ppasid}: nothing mapped in [0x${iova.toString(16)}, +${length})`);
    return this.removeAreas(tx, hit);
  }

  /** Unmap everything; an empty table unmaps 0 bytes (iopt_unmap_all). */
  unmapAll(tx: Tx): number {
    return this.removeAreas(tx, [...this.areas]);
  }

  private removeAreas(tx: Tx, areas: Area[]): number {
    let bytes = 0;
    for (const area of areas) {
      const index = this.areas.indexOf(area);
      tx.do('iopt.remove-area', () => this.removeArea(area), () => this.insertArea(index, area));
      area.mm.unpinRange(tx, area.pfns);
      bytes += area.length;
    }
    return bytes;
  }

  private insertArea(index: number, area: Area): void {
    this.areas.splice(index, 0, area);
    area.pfns.forEach((pfn, i) => this.pages.set(pageIndex(area.iova) + i, Object.freeze({ hpa: pfn * PAGE_SIZE, read: area.read, write: area.write })));
  }

  private removeArea(area: Area): void {
    this.areas.splice(this.areas.indexOf(area), 1);
    for (let i = 0; i < area.pfns.length; i++) this.pages.delete(pageIndex(area.iova) + i);
  }

  /** Index of the first area whose end is above iova (binary search). */
  private firstEndingAfter(iova: number): number {
    let lo = 0;
    let hi = this.areas.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.areas[mid].iova + this.areas[mid].length <= iova) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
