import { AddressSpace, MmTranslation } from '../memory/address-space';
import { IovaPageTable } from './io-pagetable';
import { MmPageTableHandle, NestedPageTableHandle } from './pgtbl';

/** BIND_PGTBL mm: DMA at VA x reaches what the owner process sees at x (host SVA). */
export class MmPageTable implements MmPageTableHandle {
  readonly kind = 'mm';
  destroyed = false;

  constructor(
    readonly id: number,
    readonly ppasid: number,
    readonly pid: number,
    private readonly mm: AddressSpace,
  ) {}

  lookup(hva: number): MmTranslation | null {
    return this.destroyed ? null : this.mm.translate(hva);
  }
}

/**
 * BIND_PGTBL nested: the IOMMU walks the guest's first-level table at `root` (a GPA, translated by the
 * parent) — the walk itself lives in the data plane (iommu/translate.ts). root null = pass-through.
 */
export class NestedPageTable implements NestedPageTableHandle {
  readonly kind = 'nested';
  destroyed = false;

  constructor(
    readonly id: number,
    readonly ppasid: number,
    readonly root: number | null,
    readonly parent: IovaPageTable,
  ) {}
}

export type PageTable = IovaPageTable | MmPageTable | NestedPageTable;
