// What the guest OS needs from its VMM (DESIGN §3, §5 VMM table): guest-physical memory, vCPU operations,
// the machine description and the scalable-mode vIOMMU. Each method is one REST call; a failure rejects
// with the KernelError the VMM raised (errno preserved). Only virtual ids cross this boundary.
import type { Descriptor, EnqcmdResult } from '@app/shared/contract/host-kernel';
import type { Errno } from '@app/shared/errno';

export interface GuestMachine {
  memoryMiB: number;
  vcpus: number;
  devices: Array<{ vrid: number; bdf: string }>;
}

export type InvalidationDescriptor =
  | { type: 'pasid-cache'; vpasid?: number }
  | { type: 'piotlb'; vpasid: number; addr?: number; npages?: number; length?: number }
  | { type: 'wait' };

/** A vIOMMU fault record (virtual ids only). */
export interface GuestFault {
  seq: number;
  vrid: number | null;
  vpasid: number;
  address?: number;
  access?: 'read' | 'write';
  code: number;
  reason: string;
  errno: Errno;
  detail?: string;
}

export interface InvalidationResult {
  completed: number;
  faults: GuestFault[];
}

export interface VmmPort {
  machine(): Promise<GuestMachine>;
  readMemory(gpa: number, length: number): Promise<Buffer>;
  writeMemory(gpa: number, data: Buffer): Promise<void>;
  setContext(vrid: number, pasidDirGpa: number): Promise<void>;
  invalidate(descriptors: InvalidationDescriptor[]): Promise<InvalidationResult>;
  wrmsr(vcpu: number, msr: 'IA32_PASID', value: number): Promise<void>;
  enqcmd(vcpu: number, vrid: number, descriptor: Descriptor): Promise<EnqcmdResult>;
}
