// Guest-facing shapes of the vIOMMU (DESIGN §3, §5 VMM table). Nothing here carries a host PASID.
export type { GuestPageResponse, InvalidationDescriptor, InvalidationResult, VirtualFault, VirtualPageRequest } from '@app/shared/contract/vmm';

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
  /**
   * Set on a stale binding: a teardown (or the unwind of a failed setup) failed part way, so the host may
   * still hold what is listed. It no longer mirrors any guest entry, still counts against the quota, and
   * the next pasid-cache of this vPASID retries these steps before anything is set up again.
   */
  teardown?: PendingTeardown;
}

/** What the host may still hold for one mirrored vPASID; a teardown step that fails stays pending. */
export interface PendingTeardown {
  /** KVM may still map vPASID → ioasid (UNMAP_PASID pending). */
  mapped: boolean;
  /** vrids whose ALLOW may still hold the ioasid, in the order they were allowed (DISALLOW pending). */
  vrids: number[];
  /** The ioasid is not destroyed yet (DESTROY pending). */
  live: boolean;
}
