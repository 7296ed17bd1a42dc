// Reads one guest PASID entry (directory entry, then table entry) from guest memory and validates it,
// like QEMU's vtd_get_pe_from_pasid_table() / vtd_pe_type_check(): every refusal is a fault reason and
// nothing here talks to the host beyond reading guest RAM.
import { FLPM_4_LEVEL } from '@app/shared/vtd/vtd.constants';
import {
  decodePasidDirEntry,
  decodePasidEntry,
  PASID_DIR_ENTRY_SIZE,
  PASID_ENTRY_SIZE,
  pasidDirEntryOffset,
  pasidTableEntryOffset,
  Pgtt,
} from '@app/shared/vtd/pasid-entry';
import type { Errno } from '@app/shared/errno';
import { KernelError } from '@app/shared/errno';
import { PAGE_SIZE } from '@app/shared/x86/x86.constants';
import { ACCEPTED_PGTT, type ViommuFaultReason } from './viommu.constants';
import type { MirroredEntry } from './viommu.types';

export type EntryRead =
  | { kind: 'absent' }
  | { kind: 'present'; entry: MirroredEntry; raw: Buffer }
  | { kind: 'refused'; reason: ViommuFaultReason; errno: Errno; detail: string };

export interface EntryReaderContext {
  readGuest(gpa: number, length: number): Promise<Buffer>;
  ramBytes: number;
}

const refuse = (reason: ViommuFaultReason, detail: string, errno: Errno = 'EINVAL'): EntryRead => ({
  kind: 'refused',
  reason,
  errno,
  detail,
});

function inRam(ctx: EntryReaderContext, gpa: number, length: number): boolean {
  return Number.isSafeInteger(gpa) && gpa >= 0 && gpa + length <= ctx.ramBytes;
}

async function readOrNull(ctx: EntryReaderContext, gpa: number, length: number): Promise<Buffer | KernelError> {
  try {
    return await ctx.readGuest(gpa, length);
  } catch (err) {
    if (err instanceof KernelError) return err;
    throw err;
  }
}

/** Guest-visible text of a failed guest-memory read: the host's message may name host fds, pids or URLs. */
function readFailed(what: 'directory' | 'table', vpasid: number, err: KernelError): string {
  return `reading the PASID ${what} entry of vPASID ${vpasid} failed (${err.errno})`;
}

/** The entry of `vpasid` under the PASID directory at `dirGpa`, validated for a device of `pasidWidth` bits. */
export async function readPasidEntry(
  ctx: EntryReaderContext,
  dirGpa: number,
  vpasid: number,
  pasidWidth: number,
): Promise<EntryRead> {
  const dirEntryGpa = dirGpa + pasidDirEntryOffset(vpasid);
  if (!inRam(ctx, dirEntryGpa, PASID_DIR_ENTRY_SIZE)) {
    return refuse('pasid-dir-access-error', `directory entry at gpa 0x${dirEntryGpa.toString(16)} is outside guest RAM`, 'EFAULT');
  }
  const dirRaw = await readOrNull(ctx, dirEntryGpa, PASID_DIR_ENTRY_SIZE);
  if (dirRaw instanceof KernelError) return refuse('pasid-dir-access-error', readFailed('directory', vpasid, dirRaw), 'EFAULT');
  const dir = decodePasidDirEntry(dirRaw.readBigUInt64LE(0));
  if (!dir.present) return { kind: 'absent' };
  if (dir.reserved) return refuse('pasid-dir-reserved', `directory entry for vPASID ${vpasid} has reserved bits set`);
  if (dir.tableGpa % PAGE_SIZE !== 0 || !inRam(ctx, dir.tableGpa, PAGE_SIZE)) {
    return refuse('pasid-table-access-error', `PASID table gpa 0x${dir.tableGpa.toString(16)} is not a page of guest RAM`, 'EFAULT');
  }

  const entryGpa = dir.tableGpa + pasidTableEntryOffset(vpasid);
  const raw = await readOrNull(ctx, entryGpa, PASID_ENTRY_SIZE);
  if (raw instanceof KernelError) return refuse('pasid-table-access-error', readFailed('table', vpasid, raw), 'EFAULT');
  const pe = decodePasidEntry(raw);
  if (!pe.present) return { kind: 'absent' };

  // Validation order follows the spec's checks: range, reserved bits, type, then the pointers.
  if (vpasid >= 2 ** pasidWidth) {
    return refuse('pasid-too-large', `vPASID ${vpasid} exceeds the device's ${pasidWidth}-bit PASID width`);
  }
  if (pe.reserved) return refuse('pasid-entry-reserved', `PASID entry for vPASID ${vpasid} has reserved bits set`);
  if (!(ACCEPTED_PGTT as readonly number[]).includes(pe.pgtt)) {
    return refuse('pasid-entry-invalid', `PGTT ${pe.pgtt} is not supported (first-level 1 and pass-through 4 only)`);
  }
  // DESIGN §3b: FLPM other than 0 is refused whatever the type, and pass-through has no first-level root,
  // so its FLPTR must stay zero (bits a type does not use are kept at zero).
  if (pe.flpm !== FLPM_4_LEVEL) return refuse('pasid-entry-invalid', `FLPM ${pe.flpm} is not 4-level paging`);
  if (pe.pgtt === Pgtt.PassThrough) {
    if (pe.flptr !== 0) return refuse('pasid-entry-invalid', `pass-through entry for vPASID ${vpasid} has a non-zero FLPTR`);
    return { kind: 'present', entry: { pgtt: pe.pgtt, flptr: null }, raw: Buffer.from(raw) };
  }
  if (pe.flptr % PAGE_SIZE !== 0 || !inRam(ctx, pe.flptr, PAGE_SIZE)) {
    return refuse('pasid-entry-invalid', `FLPTR 0x${pe.flptr.toString(16)} is not a page of guest RAM`);
  }
  return { kind: 'present', entry: { pgtt: pe.pgtt, flptr: pe.flptr }, raw: Buffer.from(raw) };
}

export function sameEntry(a: MirroredEntry, b: MirroredEntry): boolean {
  return a.pgtt === b.pgtt && a.flptr === b.flptr;
}
