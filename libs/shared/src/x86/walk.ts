import { modPow2, pageOffsetOf } from './page-math';
import { CANONICAL_LIMIT, PAGE_SIZE, PAGING_LEVELS as LEVELS, PHYS_ADDR_LIMIT, PTE_SIZE, PTES_PER_TABLE } from './x86.constants';
import { PTE_HI_ADDRESS_MASK, PTE_HI_RESERVED_MASK, PTE_LO_A, PTE_LO_ADDRESS_MASK, PTE_LO_D, PTE_LO_P, PTE_LO_PS, PTE_LO_RW, PTE_LO_US } from './x86.constants';

/** Memory the walker reads tables from: guest-physical for the guest and nested IOMMU walks, physical in tests. */
export interface WalkMemory {
  /** null: the table read itself failed (nested: the table's GPA does not translate in the parent). */
  readU64(address: number): bigint | null;
  /** Present when the walker may set A/D like a hardware walk; false: the update failed. */
  writeU64?(address: number, value: bigint): boolean;
}

/**
 * The same memory in numbers (the IOMMU's walk, no BigInt): an entry is read as its two little-endian u32 halves.
 * readEntry fills out[0] (bits 31:0) and out[1] (bits 63:32), false when the table read failed; writeLow replaces
 * the low half (A and D live there; the high half of an entry the walker updates never changes).
 */
export interface WalkWords {
  readEntry(address: number, out: Uint32Array): boolean;
  writeLow?(address: number, low: number): boolean;
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

/** 4 KiB pages one entry of each level maps: 512^3, 512^2, 512, 1 (index = page / span % 512). */
const SPAN = [0, 1, PTES_PER_TABLE, PTES_PER_TABLE ** 2, PTES_PER_TABLE ** 3];
const HI = 2 ** 32;

/**
 * The one x86-64 4-level walker (SDM §4.5; VT-d first-stage, VT-d spec §3.6 / §9.7).
 * - R/W and U/S are ANDed over all levels; a write needs R/W = 1 everywhere (CR0.WP = 1 / VT-d WPE behaviour);
 *   with access.user, the page needs U/S = 1 everywhere (SDM §4.6.1; VT-d first stage: a request with PR = 0
 *   to a supervisor page faults). Supervisor accesses to user pages are allowed (no SMAP/SMEP in this model).
 * - Bit 7 is reserved in a PML4E (→ reserved-bits) and PS in a PDPTE/PDE is unsupported (→ large-page);
 *   in a PTE bit 7 is PAT and is accepted.
 * - With a writer, A is set in every entry used (leaf included) and D in the leaf on a write, only for an
 *   access that is allowed (SDM §4.8); a failed A/D update stops the walk as 'table-unreachable'.
 * - A bad root (unaligned or beyond the physical address width) reports 'reserved-bits' at level 4 with no
 *   entryAddress, like a root pointer with reserved bits set.
 * Entries are read as two u32 halves (numbers only); walk4Level is the same walk over 64-bit BigInt memory.
 */
export function walkWords(cr3: number, va: number, write: boolean, userAccess: boolean, mem: WalkWords, entry: Uint32Array): WalkResult {
  const out = newWalkOutcome();
  if (walkInto(cr3, va, write, userAccess, mem, entry, out)) return { ok: true, address: out.address, writable: out.writable, user: out.user, levels: LEVELS };
  const reason = out.reason as WalkFaultReason;
  return out.entryAddress < 0 ? { ok: false, reason, level: out.level } : { ok: false, reason, level: out.level, entryAddress: out.entryAddress };
}

/** walkInto's answer, in a record its caller keeps and reuses (the IOMMU's walk allocates nothing per request). */
export interface WalkOutcome {
  /** ok: the translated address, and R/W and U/S ANDed over the levels. */
  address: number;
  writable: boolean;
  user: boolean;
  /** Not ok: why, at which level, and the entry's address (-1: no entry was read, a bad va or root). */
  reason: WalkFaultReason | null;
  level: number;
  entryAddress: number;
  /**
   * Whether the walk got past a present PDE (ok or not), and then what a paging-structure cache keeps of it: the
   * page table it names (pt) and R/W, U/S ANDed over levels 4–2. pt is -1 when it did not (or started below it).
   */
  pt: number;
  ptWritable: boolean;
  ptUser: boolean;
}

export function newWalkOutcome(): WalkOutcome {
  return { address: 0, writable: false, user: false, reason: null, level: 0, entryAddress: -1, pt: -1, ptWritable: false, ptUser: false };
}

function fault(out: WalkOutcome, reason: WalkFaultReason, level: number, entryAddress: number): false {
  out.reason = reason;
  out.level = level;
  out.entryAddress = entryAddress;
  return false;
}

/** walkWords into `out`: true when the walk translated (address, writable, user set), false with reason/level set. */
export function walkInto(cr3: number, va: number, write: boolean, userAccess: boolean, mem: WalkWords, entry: Uint32Array, out: WalkOutcome): boolean {
  out.pt = -1; // before any refusal: `out` is reused, and a PDE of an earlier walk must not look like this one's
  if (!Number.isSafeInteger(va) || va < 0 || va >= CANONICAL_LIMIT) return fault(out, 'non-canonical', LEVELS, -1);
  if (!Number.isSafeInteger(cr3) || cr3 < 0 || pageOffsetOf(cr3) !== 0 || cr3 >= PHYS_ADDR_LIMIT) return fault(out, 'reserved-bits', LEVELS, -1);
  return walkLevels(cr3, LEVELS, true, true, va, write, userAccess, mem, entry, out);
}

/**
 * walkInto from the page table a cached PDE names (a paging-structure cache hit): only the PTE is read, with
 * R/W and U/S of the levels above as cached (VT-d §6.2.4). `pt` is what an earlier walk's out.pt was.
 */
export function walkFromPt(pt: number, writable: boolean, user: boolean, va: number, write: boolean, userAccess: boolean, mem: WalkWords, entry: Uint32Array, out: WalkOutcome): boolean {
  out.pt = -1;
  if (!Number.isSafeInteger(va) || va < 0 || va >= CANONICAL_LIMIT) return fault(out, 'non-canonical', LEVELS, -1);
  return walkLevels(pt, 1, writable, user, va, write, userAccess, mem, entry, out);
}

function walkLevels(start: number, top: number, writableAbove: boolean, userAbove: boolean, va: number, write: boolean, userAccess: boolean, mem: WalkWords, entry: Uint32Array, out: WalkOutcome): boolean {
  const page = Math.floor(va / PAGE_SIZE);
  let table = start;
  let writable = writableAbove;
  let user = userAbove;
  for (let level = top; level >= 1; level--) {
    const entryAddress = table + modPow2(Math.floor(page / SPAN[level]), PTES_PER_TABLE) * PTE_SIZE;
    if (!mem.readEntry(entryAddress, entry)) return fault(out, 'table-unreachable', level, entryAddress);
    const lo = entry[0];
    const hi = entry[1];
    if ((lo & PTE_LO_P) === 0) return fault(out, 'not-present', level, entryAddress);
    const large = (lo & PTE_LO_PS) !== 0;
    if ((hi & PTE_HI_RESERVED_MASK) !== 0 || (level === 4 && large)) return fault(out, 'reserved-bits', level, entryAddress);
    if (large && level > 1) return fault(out, 'large-page', level, entryAddress);
    writable &&= (lo & PTE_LO_RW) !== 0;
    user &&= (lo & PTE_LO_US) !== 0;
    const leaf = level === 1;
    if (leaf && userAccess && !user) return fault(out, 'user-denied', level, entryAddress);
    if (leaf && write && !writable) return fault(out, 'write-denied', level, entryAddress);
    const updated = (lo | PTE_LO_A | (leaf && write ? PTE_LO_D : 0)) >>> 0;
    if (updated !== lo && mem.writeLow && !mem.writeLow(entryAddress, updated)) return fault(out, 'table-unreachable', level, entryAddress);
    const address = (hi & PTE_HI_ADDRESS_MASK) * HI + ((lo & PTE_LO_ADDRESS_MASK) >>> 0);
    if (leaf) {
      out.address = address + pageOffsetOf(va);
      out.writable = writable;
      out.user = user;
      out.reason = null;
      return true;
    }
    if (level === 2) {
      out.pt = address;
      out.ptWritable = writable;
      out.ptUser = user;
    }
    table = address;
  }
  /* istanbul ignore next -- the loop always returns at level 1 */
  throw new Error('unreachable');
}

const LOW32 = 0xffff_ffffn;

/** walkWords over memory that holds 64-bit entries as BigInt (the guest's tables, tests). */
export function walk4Level(cr3: number, va: number, access: WalkAccess, mem: WalkMemory): WalkResult {
  const words: WalkWords = {
    readEntry(address, out) {
      const raw = mem.readU64(address);
      if (raw === null) return false;
      out[0] = Number(raw & LOW32);
      out[1] = Number((raw >> 32n) & LOW32);
      return true;
    },
  };
  const write = mem.writeU64?.bind(mem);
  if (write) {
    words.writeLow = (address, low) => {
      const raw = mem.readU64(address);
      return raw !== null && write(address, (raw & ~LOW32) | BigInt(low));
    };
  }
  return walkWords(cr3, va, access.write, access.user === true, words, new Uint32Array(2));
}
