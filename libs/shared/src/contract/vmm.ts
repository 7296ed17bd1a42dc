// The guest-facing VMM contract (DESIGN §3, §5 VMM table): what a guest sends to and gets from its
// VMM's virtual hardware. Nothing here carries a host PASID, host pid or fd.
import type { Errno } from '../errno';
import type { PagePerm } from './host-kernel';

/** The machine description a guest boots on: devices known only by virtual RID. */
export interface GuestMachine {
  memoryMiB: number;
  vcpus: number;
  devices: Array<{ vrid: number; bdf: string }>;
}

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

/**
 * A record of a DMA the IOMMU refused (it names the access); otherwise the vIOMMU refused an entry or an
 * invalidation, which carries none. A driver waiting on a PASID-cache or IOTLB invalidation must look at the
 * latter only: a device faulting on the same vPASID meanwhile says nothing about the entry.
 */
export function isDmaFault(f: Pick<VirtualFault, 'access'>): boolean {
  return f.access !== undefined;
}

/**
 * A page request group as the guest's vIOMMU page request queue holds it (VT-d page request descriptors, in guest
 * terms): the virtual RID and vPASID, the device's group index, and one request per page (address, access, LPIG).
 */
export interface VirtualPageRequest {
  /** The queue's own number for the group (oldest first). */
  seq: number;
  vrid: number;
  vpasid: number;
  grpid: number;
  requests: Array<{ addr: number; perm: PagePerm; last: boolean }>;
}

/** A page group response (VT-d page group response descriptor): Success, Invalid Request, or Response Failure. */
export interface GuestPageResponse {
  vrid: number;
  vpasid: number;
  grpid: number;
  code: 'success' | 'invalid' | 'failure';
}
