// Guest-facing shapes of the vIOMMU (DESIGN §3, §5 VMM table). Nothing here carries a host PASID.
import type { Errno } from '@app/shared/errno';

/** Invalidation queue descriptors (VT-d §6.5.2: PASID-cache, PASID-based IOTLB, invalidation wait). */
export type InvalidationDescriptor =
  /** PASID-selective when `vpasid` is given, global (every registered directory) otherwise. */
  | { type: 'pasid-cache'; vpasid?: number }
  /** All of the vPASID's translations, or the range [addr, addr + npages*4K) / [addr, addr + length). */
  | { type: 'piotlb'; vpasid: number; addr?: number; npages?: number; length?: number }
  | { type: 'wait' };

export interface InvalidationResult {
  /** Descriptors completed, in queue order. */
  completed: number;
  /** Faults raised while processing this batch (also kept in the fault log). */
  faults: VirtualFault[];
}

/** A fault record as the guest sees it: virtual ids only. */
export interface VirtualFault {
  seq: number;
  /** Virtual RID, or null when the refusal concerns no single device (e.g. a vPASID out of range). */
  vrid: number | null;
  vpasid: number;
  /** DMA address (guest virtual for a first-level PASID) when the fault comes from a DMA. */
  address?: number;
  access?: 'read' | 'write';
  /** VT-d fault reason code (software-defined codes ≥ 0xf0) and its name. */
  code: number;
  reason: string;
  /** The errno a guest driver should return for this refusal. */
  errno: Errno;
  /** What was refused, for humans. */
  detail?: string;
}

/** A page request as the guest sees it (stub: the host queue is not wired yet). */
export interface VirtualPageRequest {
  seq: number;
  vrid: number;
  vpasid: number;
  address: number;
  access: 'read' | 'write';
}

/** The guest PASID entry as far as the VMM mirrors it. */
export interface MirroredEntry {
  /** 1 first-level (nested over GPA), 4 pass-through. */
  pgtt: number;
  /** First-level root GPA (process CR3); null for pass-through. */
  flptr: number | null;
}

/** VMM-internal shadow of one bound vPASID (contains the pPASID: never returned to the guest). */
export interface ShadowBinding {
  vpasid: number;
  /** Host ioasid = pPASID, shared by every vrid bound to this vPASID. */
  ioasid: number;
  entry: MirroredEntry;
  /** vrids allowed on the ioasid, in the order they were allowed. */
  vrids: number[];
  /** The 64 raw bytes of the entry of each vrid when it was mirrored, hex. */
  snapshots: Record<number, string>;
}
