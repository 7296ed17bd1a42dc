import { decodePte, pageTableIndexes } from './pte';
import { CANONICAL_LIMIT, PAGE_SIZE, PAGING_LEVELS as LEVELS, PHYS_ADDR_LIMIT, PTE_A, PTE_D, PTE_SIZE } from './x86.constants';

/** Memory the walker reads tables from: guest-physical for the guest and nested IOMMU walks, physical in tests. */
export interface WalkMemory {
  /** null: the table read itself failed (nested: the table's GPA does not translate in the parent). */
  readU64(address: number): bigint | null;
  /** Present when the walker may set A/D like a hardware walk; false: the update failed. */
  writeU64?(address: number, value: bigint): boolean;
}

export type WalkFaultReason = 'not-present' | 'reserved-bits' | 'large-page' | 'write-denied' | 'user-denied' | 'table-unreachable' | 'non-canonical';

/** write: a write access; user: a user-mode access (CPL 3, or a DMA request with PR = 0), checked against U/S. */
export interface WalkAccess {
  write: boolean;
  user?: boolean;
}

/** level: 4 = PML4 … 1 = PT (VT-d/QEMU numbering). */
export type WalkResult =
  | { ok: true; address: number; writable: boolean; user: boolean; levels: number }
  | { ok: false; reason: WalkFaultReason; level: number; entryAddress?: number };

/**
 * The one x86-64 4-level walker (SDM §4.5; VT-d first-stage, VT-d spec §3.6 / §9.7).
 * - R/W and U/S are ANDed over all levels; a write needs R/W = 1 everywhere (CR0.WP = 1 / VT-d WPE behaviour);
 *   with access.user, the page needs U/S = 1 everywhere (SDM §4.6.1; VT-d first stage: a request with PR = 0
 *   to a supervisor page faults). Supervisor accesses to user pages are allowed (no SMAP/SMEP in this model).
 * - Bit 7 is reserved in a PML4E (→ reserved-bits) and PS in a PDPTE/PDE is unsupported (→ large-page);
 *   in a PTE bit 7 is PAT and is accepted.
 * - With writeU64, A is set in every entry used (leaf included) and D in the leaf on a write, only for an
 *   access that is allowed (SDM §4.8); a failed A/D update stops the walk as 'table-unreachable'.
 * - A bad root (unaligned or beyond the physical address width) reports 'reserved-bits' at level 4 with no
 *   entryAddress, like a root pointer with reserved bits set.
 */
export function walk4Level(cr3: number, va: number, access: WalkAccess, mem: WalkMemory): WalkResult {
  if (!Number.isSafeInteger(va) || va < 0 || va >= CANONICAL_LIMIT) return { ok: false, reason: 'non-canonical', level: LEVELS };
  if (!Number.isSafeInteger(cr3) || cr3 < 0 || cr3 % PAGE_SIZE !== 0 || cr3 >= PHYS_ADDR_LIMIT) {
    return { ok: false, reason: 'reserved-bits', level: LEVELS };
  }
  const indexes = pageTableIndexes(va);
  let table = cr3;
  let writable = true;
  let user = true;
  for (let level = LEVELS; level >= 1; level--) {
    const entryAddress = table + indexes[LEVELS - level] * PTE_SIZE;
    const raw = mem.readU64(entryAddress);
    if (raw === null) return { ok: false, reason: 'table-unreachable', level, entryAddress };
    const pte = decodePte(raw);
    if (!pte.present) return { ok: false, reason: 'not-present', level, entryAddress };
    if (pte.reserved || (level === 4 && pte.large)) return { ok: false, reason: 'reserved-bits', level, entryAddress };
    if (pte.large && level > 1) return { ok: false, reason: 'large-page', level, entryAddress };
    writable &&= pte.writable;
    user &&= pte.user;
    const leaf = level === 1;
    if (leaf && access.user && !user) return { ok: false, reason: 'user-denied', level, entryAddress };
    if (leaf && access.write && !writable) return { ok: false, reason: 'write-denied', level, entryAddress };
    const updated = raw | PTE_A | (leaf && access.write ? PTE_D : 0n);
    if (updated !== raw && mem.writeU64 && !mem.writeU64(entryAddress, updated)) {
      return { ok: false, reason: 'table-unreachable', level, entryAddress };
    }
    if (leaf) return { ok: true, address: pte.address + (va % PAGE_SIZE), writable, user, levels: LEVELS };
    table = pte.address;
  }
  /* istanbul ignore next -- the loop always returns at level 1 */
  throw new Error('unreachable');
}
