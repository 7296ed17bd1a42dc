// The host-kernel REST contract (DESIGN §5): shapes shared by the server, its clients and the tests.

export type IoasidState = 'allocated' | 'bound' | 'destroyed';
export type PgtblSpec = { kind: 'mm' } | { kind: 'iova' } | { kind: 'nested'; parent: number; root?: number; faultQueue?: number };
export type AllowMode = 'rid' | 'pasid';
export type DescriptorOp = 'noop' | 'memmove' | 'fill' | 'compare';

export interface Descriptor {
  op: DescriptorOp;
  src?: number;
  dst?: number;
  length?: number;
  pattern?: number;
  completion: number;
  /** DSA block-on-fault: a translation fault becomes page requests the device waits on (DESIGN §10). */
  blockOnFault?: boolean;
}

export type EnqcmdOutcome = 'accepted' | 'retry' | 'gp';

export interface EnqcmdResult {
  result: EnqcmdOutcome;
  /** Why: 'ia32-pasid-invalid', 'vpasid-unmapped' (VM exit answered with #GP), 'queue-full', ... */
  reason?: string;
}

/** The reason of every process exit a host-kernel shutdown causes (its `exit` lifeline event says so). */
export const HOST_SHUTDOWN_REASON = 'host-kernel shutdown';

export interface ProcessCreated {
  pid: number;
  token: string;
}

export interface IoasidInfo {
  ioasid: number;
  state: IoasidState;
  pgtbl: null | { kind: string; parent?: number; root?: number | null };
  refs: number;
  holders: { devices: string[]; kvm: Array<{ vmFd: number; vpasid: number }>; children: number[] };
}

export interface DeviceInfo {
  bdf: string;
  vendorId: number;
  deviceId: number;
  pasidWidth: number;
  wqDepth: number;
}

export interface PasidPool {
  allocated: number;
  parked: number;
  free: number;
}

export interface FaultRecord {
  bdf: string;
  pasid: number | null;
  address: number;
  access: 'read' | 'write';
  reason: string;
  code?: number;
}

/** Access a page request asks for (PCIe PRI R/W/Exe/Priv; iommufd IOMMU_PGFAULT_PERM_*). */
export interface PagePerm {
  read: boolean;
  write: boolean;
  exec: boolean;
  privileged: boolean;
}

/** A page request group as the owner of a fault queue reads it (DESIGN §10): whole, with its response cookie. */
export interface FaultGroup {
  cookie: number;
  bdf: string;
  /** The host PASID (pPASID) the requests were tagged with. */
  pasid: number;
  /** The device's 9-bit page request group index. */
  grpid: number;
  requests: Array<{ addr: number; perm: PagePerm; last: boolean }>;
}

/** What a fault queue's owner may answer a group with (iommufd IOMMUFD_PAGE_RESP_SUCCESS / _INVALID). */
export type FaultResponseCode = 'success' | 'invalid';

/** The host page request queue as the admin sees it. */
export interface PageRequestQueueView {
  depth: number;
  /** Requests of the groups waiting for an answer. */
  held: number;
  /** Groups waiting for an answer. */
  pending: number;
  overflows: number;
  timeoutMs: number;
  groups: Array<{ seq: number; bdf: string; ppasid: number; grpid: number; requests: number; handler: 'kernel' | 'queue'; owner: number | null }>;
}
