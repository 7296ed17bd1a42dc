// Global PASID-cache invalidation support: find every present entry under one guest PASID directory.
import {
  decodePasidDirEntry,
  PASID_DIR_ENTRY_SIZE,
  PASID_ENTRY_SIZE,
  PASID_TABLE_ENTRIES,
} from '@app/shared/vtd/pasid-entry';
import { PAGE_SIZE } from '@app/shared/x86/x86.constants';
import { PASID_DIR_BYTES } from './viommu.constants';

/** vPASIDs whose PASID-entry present bit is set (validity is checked later, entry by entry). */
export async function scanPresentVpasids(
  read: (gpa: number, length: number) => Promise<Buffer>,
  dirGpa: number,
  ramBytes: number,
): Promise<number[]> {
  const found: number[] = [];
  const dir = await read(dirGpa, PASID_DIR_BYTES);
  for (let i = 0; i < PASID_DIR_BYTES / PASID_DIR_ENTRY_SIZE; i++) {
    const de = decodePasidDirEntry(dir.readBigUInt64LE(i * PASID_DIR_ENTRY_SIZE));
    if (!de.present || de.reserved || de.tableGpa % PAGE_SIZE !== 0 || de.tableGpa + PAGE_SIZE > ramBytes) {
      // An invalid directory entry is reported by the per-vPASID read only if one of its vPASIDs is named.
      continue;
    }
    const table = await read(de.tableGpa, PAGE_SIZE);
    for (let j = 0; j < PASID_TABLE_ENTRIES; j++) {
      if ((table[j * PASID_ENTRY_SIZE] & 1) === 1) found.push(i * PASID_TABLE_ENTRIES + j);
    }
  }
  return found;
}
