import type { MmTranslation } from '../memory/address-space';

/** One 4 KiB IOVA page of an `iova` table; hpa is the byte's host address (page frame + offset). */
export interface IovaTranslation {
  hpa: number;
  read: boolean;
  write: boolean;
}

/** Access a page request asks for (PCIe PRI Page Request Message R/W/Exe/Priv; iommufd IOMMU_PGFAULT_PERM_*). */
export interface PagePerm {
  read: boolean;
  write: boolean;
  exec: boolean;
  privileged: boolean;
}

/** One page request: a page-aligned address, its access, and whether it closes its group (LPIG). */
export interface PageRequest {
  address: number;
  perm: PagePerm;
  last: boolean;
}

/** What the host answers a page request group with (PCIe PRG Response Success / Invalid Request). */
export type PageResponseCode = 'success' | 'invalid';

/** A whole page request group as the IOMMU hands it to a page table's fault handler (io-pgfault struct iopf_group). */
export interface IopfGroup {
  /** The IOMMU's own number for the group: never reused, so nothing can answer a later group by mistake. */
  readonly seq: number;
  readonly bdf: string;
  readonly ppasid: number;
  /** The device's 9-bit page request group index. */
  readonly grpid: number;
  readonly requests: readonly PageRequest[];
}

/**
 * The fault handler of a page table (io-pgfault's domain->iopf_handler): the kernel's own for host SVA, which
 * answers at once (handle_mm_fault), or a fault queue that holds the group until its owner answers (iommufd).
 */
export interface IopfHandler {
  /** Who answers groups handed to this handler; for a queue, where its owner reads them. */
  readonly owner: { kind: 'kernel' } | { kind: 'queue'; pid: number; fd: number; faultQueue: number };
  /** Takes a group: the answer now, or 'queued' when the handler answers later (through the IOMMU). */
  handle(group: IopfGroup): PageResponseCode | 'queued';
  /** The group was answered by someone else (teardown, timeout): the handler forgets it. */
  forget(seq: number): void;
}

interface PageTableCommon {
  /** Stable and never reused (unlike the pPASID), so IOTLB entries can be keyed on it. */
  readonly id: number;
  /** The ioasid (pPASID) this table was bound to. */
  readonly ppasid: number;
  /** Set by DESTROY: the table is wiped and every route to it must fault. */
  readonly destroyed: boolean;
  /** Who handles page requests for this table; null: it takes none (they are answered invalid at once). */
  readonly iopf: IopfHandler | null;
}

/** An IO page table filled by MAP/UNMAP (iommufd IOAS). */
export interface IovaPageTableHandle extends PageTableCommon {
  readonly kind: 'iova';
  /** iova's translation; the same object for every lookup of a page-aligned iova (read-only). */
  lookup(iova: number): Readonly<IovaTranslation> | null;
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

export type BindSpec = { kind: 'mm' } | { kind: 'iova' } | { kind: 'nested'; parent: number; root?: number | null; faultQueue?: number };
