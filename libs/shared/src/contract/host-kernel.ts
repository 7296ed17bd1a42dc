// The host-kernel REST contract (DESIGN §5): shapes shared by the server, its clients and the tests.

export type IoasidState = 'allocated' | 'bound' | 'destroyed';
export type PgtblSpec = { kind: 'mm' } | { kind: 'iova' } | { kind: 'nested'; parent: number; root?: number };
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
