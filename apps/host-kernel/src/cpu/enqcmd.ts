import type { Descriptor, EnqcmdResult } from '@app/shared/contract/host-kernel';
import { encodeDescriptorInto } from '@app/shared/dsa/descriptor';
import { DESC_PASID_MASK } from '@app/shared/dsa/dsa.constants';
import { KernelError } from '@app/shared/errno';
import type { Tx } from '../fault-injection';
import { NO_PASID } from '../ioasid/ioasid.constants';
import { IA32_PASID_PASID_MASK, IA32_PASID_VALID } from '@app/shared/x86/msr.constants';

/** The device side of ENQCMD: a shared work queue portal. */
export interface EnqcmdPortal {
  bdf: string;
  pasidCapable: boolean;
  /** The work queue has no free slot: the portal write would answer ZF=1. */
  full(): boolean;
  /**
   * A 64-byte buffer for one ENQCMD's descriptor, the call's own until it reaches submit(), which takes it back
   * once the device has copied it (so a descriptor costs no allocation; one in a rolled-back call is just dropped).
   */
  descriptorBuffer(): Buffer;
  submit(ppasid: number, descriptor: Buffer): 'accepted' | 'retry';
}

/** What ENQCMD on a vCPU needs from the VM: its PASID translation table (the VMCS one). */
export interface VpasidTranslation {
  /** KVM's PASID translation is on for the VM (KvmVm is one: the CPU reads its table directly). */
  readonly pasidTranslation: boolean;
  /** vPASID → pPASID; null on a miss or once the ioasid is destroyed. */
  translate(vpasid: number): number | null;
}

/**
 * Checks done before the instruction "executes" (errno, nothing queued): the portal must belong to a device
 * with a PASID capability (a shared WQ needs PASID-tagged work; EOPNOTSUPP otherwise) and the JSON descriptor
 * must encode (EINVAL/ERANGE). Returns the call's own 64-byte descriptor, PASID field 0 and priv bit clear (the
 * JSON's are ignored: the CPU fills them in), without copying the JSON object.
 */
export function prepareEnqcmd(portal: EnqcmdPortal, descriptor: Descriptor): Buffer {
  if (!portal.pasidCapable) throw new KernelError('EOPNOTSUPP', `device ${portal.bdf} has no PASID capability: it has no ENQCMD portal`);
  if (typeof descriptor !== 'object' || descriptor === null) throw new KernelError('EINVAL', `descriptor must be an object`);
  return encodeDescriptorInto(descriptor, portal.descriptorBuffer(), 0, false);
}

// The answers without a per-call object (frozen: every caller shares them).
const ACCEPTED: EnqcmdResult = Object.freeze({ result: 'accepted' });
const GP_IA32_PASID_INVALID: EnqcmdResult = Object.freeze({ result: 'gp', reason: 'ia32-pasid-invalid' });
const GP_TRANSLATION_DISABLED: EnqcmdResult = Object.freeze({ result: 'gp', reason: 'pasid-translation-disabled' });
const GP_VPASID_UNMAPPED: EnqcmdResult = Object.freeze({ result: 'gp', reason: 'vpasid-unmapped' });
const RETRY_QUEUE_FULL: EnqcmdResult = Object.freeze({ result: 'retry', reason: 'queue-full' });

/** IA32_PASID's PASID (bits 19:0) when its valid bit is set and it is not PASID 0 (RID_PASID), else -1. */
function ia32PasidOf(ia32Pasid: number): number {
  const pasid = ia32Pasid & IA32_PASID_PASID_MASK;
  return (ia32Pasid & IA32_PASID_VALID) === 0 || pasid === NO_PASID ? -1 : pasid;
}

/**
 * ENQCMD from a host process (SDM ENQCMD): IA32_PASID.valid clear → #GP; else the PASID in bits 19:0 goes
 * untranslated into the descriptor's PASID field (privilege bit cleared) and the portal answers ZF.
 * PASID 0 is never handed out (it is RID_PASID), so a valid IA32_PASID holding 0 is treated as invalid.
 */
export function hostEnqcmd(tx: Tx, ia32Pasid: number, portal: EnqcmdPortal, descriptor: Buffer): EnqcmdResult {
  const pasid = ia32PasidOf(ia32Pasid);
  if (pasid < 0) return GP_IA32_PASID_INVALID;
  return post(tx, portal, pasid, descriptor);
}

/**
 * ENQCMD on a vCPU: IA32_PASID invalid → #GP in the guest without a VM exit. With PASID translation on, the CPU
 * looks the vPASID up in the VM's table; a miss is a VM exit that KVM answers by injecting #GP. With translation
 * off the guest would name raw host PASIDs (another process's SVA PASID included), so it is #GP too: KVM only
 * exposes ENQCMD to a guest when PASID translation is on.
 */
export function guestEnqcmd(tx: Tx, ia32Pasid: number, vm: VpasidTranslation, portal: EnqcmdPortal, descriptor: Buffer): EnqcmdResult {
  const vpasid = ia32PasidOf(ia32Pasid);
  if (vpasid < 0) return GP_IA32_PASID_INVALID;
  const ppasid = translateVpasid(vm, vpasid);
  if (typeof ppasid !== 'number') return ppasid;
  return post(tx, portal, ppasid, descriptor);
}

/**
 * ENQCMDS (SDM ENQCMDS): supervisor-only — at CPL 3 (a host process) it raises #GP. The PASID and the
 * privilege bit come from the descriptor the kernel wrote, not from IA32_PASID. In a VM that PASID is
 * translated like ENQCMD's (a miss is a VM exit that KVM answers with #GP); with translation off it is #GP,
 * as for ENQCMD (a guest never names a host PASID).
 */
export function guestEnqcmds(tx: Tx, vm: VpasidTranslation, portal: EnqcmdPortal, descriptor: Buffer, pasid: number, privileged: boolean): EnqcmdResult {
  if (!Number.isInteger(pasid) || pasid < 0 || pasid > DESC_PASID_MASK) throw new KernelError('EINVAL', `PASID ${pasid} does not fit the descriptor's 20-bit PASID field`);
  const ppasid = translateVpasid(vm, pasid);
  if (typeof ppasid !== 'number') return ppasid;
  return post(tx, portal, ppasid, descriptor, privileged);
}

/** The vCPU's vPASID → pPASID, or the #GP the guest gets (translation off, or a miss answered by KVM). */
function translateVpasid(vm: VpasidTranslation, vpasid: number): number | EnqcmdResult {
  if (!vm.pasidTranslation) return GP_TRANSLATION_DISABLED;
  const ppasid = vm.translate(vpasid);
  return ppasid === null ? GP_VPASID_UNMAPPED : ppasid;
}

/**
 * The portal write. ZF is decided now (a free slot or not); the descriptor enters the queue when the call
 * commits, after its journal row, so a call that fails to journal submits nothing. Nothing else runs in
 * between (calls are serialized), so the slot is still free then. `descriptor` is the call's own (prepareEnqcmd's):
 * it is tagged in place, and the device copies it into its work-queue slot.
 */
function post(tx: Tx, portal: EnqcmdPortal, ppasid: number, descriptor: Buffer, privileged = false): EnqcmdResult {
  if (portal.full()) {
    portal.submit(ppasid, descriptor); // counted as a retry by the device
    return RETRY_QUEUE_FULL;
  }
  // Dword 0 (little-endian): PASID in bits 19:0, priv in bit 31; bits 30:20 are the JSON's (reserved) and stay.
  descriptor[0] = ppasid;
  descriptor[1] = ppasid >>> 8;
  descriptor[2] = (descriptor[2] & 0xf0) | (ppasid >>> 16);
  descriptor[3] = (descriptor[3] & 0x7f) | (privileged ? 0x80 : 0);
  tx.deferOn(submitOnCommit, portal, ppasid, descriptor);
  return ACCEPTED;
}

/** post()'s effect on commit (a plain function: no closure per ENQCMD). */
function submitOnCommit(portal: EnqcmdPortal, ppasid: number, descriptor: Buffer): void {
  portal.submit(ppasid, descriptor);
}
