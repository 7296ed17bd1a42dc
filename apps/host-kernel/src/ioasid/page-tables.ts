import { AddressSpace, MmTranslation } from '../memory/address-space';
import type { FaultQueueObject } from './fault-queues';
import { IovaPageTable } from './io-pagetable';
import type { IopfGroup, IopfHandler, MmPageTableHandle, NestedPageTableHandle, PageResponseCode } from './pgtbl';

/** BIND_PGTBL mm: DMA at VA x reaches what the owner process sees at x (host SVA). */
export class MmPageTable implements MmPageTableHandle {
  readonly kind = 'mm';
  destroyed = false;
  /** The kernel answers its own processes' page requests at once (Linux iommu_sva_iopf_handler). */
  readonly iopf: IopfHandler;

  constructor(
    readonly id: number,
    readonly ppasid: number,
    readonly pid: number,
    private readonly mm: AddressSpace,
  ) {
    this.iopf = { owner: { kind: 'kernel' }, handle: (g) => this.handleGroup(g), forget: () => undefined };
  }

  lookup(hva: number): MmTranslation | null {
    return this.destroyed ? null : this.mm.translate(hva);
  }

  /** iommu_sva_handle_iopf: each request in turn through handle_mm_fault; the first failure answers the group invalid. */
  private handleGroup(group: IopfGroup): PageResponseCode {
    if (this.destroyed) return 'invalid';
    for (const r of group.requests) if (!this.mm.handleMmFault(r.address, r.perm)) return 'invalid';
    return 'success';
  }
}

/**
 * BIND_PGTBL nested: the IOMMU walks the guest's first-level table at `root` (a GPA, translated by the
 * parent) — the walk itself lives in the data plane (iommu/translate.ts). root null = pass-through. Page
 * requests go to the fault queue it was bound with (the iommufd FAULT object of a hwpt), or are refused.
 */
export class NestedPageTable implements NestedPageTableHandle {
  readonly kind = 'nested';
  destroyed = false;

  constructor(
    readonly id: number,
    readonly ppasid: number,
    readonly root: number | null,
    readonly parent: IovaPageTable,
    readonly iopf: FaultQueueObject | null = null,
  ) {}
}

export type PageTable = IovaPageTable | MmPageTable | NestedPageTable;
