// What the guest OS needs from its VMM (DESIGN §3, §5 VMM table): guest-physical memory, vCPU operations,
// the machine description and the scalable-mode vIOMMU. Each method is one REST call; a failure rejects
// with the KernelError the VMM raised (errno preserved). Only virtual ids cross this boundary.
import type { Descriptor, EnqcmdResult } from '@app/shared/contract/host-kernel';
import type { GuestMachine, GuestPageResponse, InvalidationDescriptor, InvalidationResult, VirtualFault, VirtualPageRequest } from '@app/shared/contract/vmm';
import type { Lifeline, LifelineHandlers } from '@app/shared/lifeline/event-sink';
import type { GuestRam } from '@app/shared/memory/guest-ram';

export type { GuestMachine, GuestPageResponse, InvalidationDescriptor, InvalidationResult, VirtualPageRequest };
/** A vIOMMU fault record as the guest sees it (virtual ids only). */
export type GuestFault = VirtualFault;


export interface VmmPort {
  /** The guest's lifeline to its VMM (DESIGN §1): its drop is the guest's death; vIOMMU events arrive on it. */
  holdLifeline(opts: LifelineHandlers & { auditUrl?: string | null }): Lifeline;
  machine(): Promise<GuestMachine>;
  /**
   * Maps the VM's RAM (the memory file the VMM hands its guest): from then on the guest's loads and stores are plain
   * copies into the bytes the VMM, KVM and the devices' DMA see — no exit, no call.
   */
  mapRam(): Promise<GuestRam>;
  /** Guest-physical access through the VMM (exploration and tests; the guest OS uses its mapping). */
  readMemory(gpa: number, length: number): Promise<Buffer>;
  writeMemory(gpa: number, data: Buffer): Promise<void>;
  setContext(vrid: number, pasidDirGpa: number): Promise<void>;
  invalidate(descriptors: InvalidationDescriptor[]): Promise<InvalidationResult>;
  wrmsr(vcpu: number, msr: 'IA32_PASID', value: number): Promise<void>;
  enqcmd(vcpu: number, vrid: number, descriptor: Descriptor): Promise<EnqcmdResult>;
  /** The vIOMMU page request queue: every group waiting for the guest's answer. */
  pageRequests(): Promise<VirtualPageRequest[]>;
  /** A page group response; it answers exactly the oldest waiting group of (vrid, vpasid, grpid) (ENOENT: none). */
  pageResponse(r: GuestPageResponse): Promise<void>;
}
