import type { MmTranslation } from '../memory/address-space';

/** One 4 KiB IOVA page of an `iova` table; hpa is the byte's host address (page frame + offset). */
export interface IovaTranslation {
  hpa: number;
  read: boolean;
  write: boolean;
}

interface PageTableCommon {
  /** Stable and never reused (unlike the pPASID), so IOTLB entries can be keyed on it. */
  readonly id: number;
  /** The ioasid (pPASID) this table was bound to. */
  readonly ppasid: number;
  /** Set by DESTROY: the table is wiped and every route to it must fault. */
  readonly destroyed: boolean;
}

/** An IO page table filled by MAP/UNMAP (iommufd IOAS). */
export interface IovaPageTableHandle extends PageTableCommon {
  readonly kind: 'iova';
  lookup(iova: number): IovaTranslation | null;
}

/** The owner process's address space (host SVA). */
export interface MmPageTableHandle extends PageTableCommon {
  readonly kind: 'mm';
  readonly pid: number;
  lookup(hva: number): MmTranslation | null;
}

/** A guest first-level table at `root` (GPA) over an iova parent; root null = pass-through to the parent. */
export interface NestedPageTableHandle extends PageTableCommon {
  readonly kind: 'nested';
  readonly root: number | null;
  readonly parent: IovaPageTableHandle;
}

/** What the IOMMU data plane gets for a route. */
export type PageTableHandle = IovaPageTableHandle | MmPageTableHandle | NestedPageTableHandle;

export type BindSpec = { kind: 'mm' } | { kind: 'iova' } | { kind: 'nested'; parent: number; root?: number | null };
