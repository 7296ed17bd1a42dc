import { KernelError } from '../errno';
import {
  PAGE_SHIFT as X86_PAGE_SHIFT,
  PAGE_SIZE as X86_PAGE_SIZE,
  PTE_A,
  PTE_ADDRESS_FIELD_BITS,
  PTE_ADDRESS_MASK,
  PTE_D,
  PTE_P,
  PTE_PS,
  PTE_RESERVED_MASK,
  PTE_RW,
  PTE_SIZE as X86_PTE_SIZE,
  PTE_US,
  PTES_PER_TABLE,
} from './x86.constants';

// Consts, not `export { … }` of the imports: CommonJS makes such a re-export a getter, called on every use.
export const PAGE_SHIFT = X86_PAGE_SHIFT;
export const PAGE_SIZE = X86_PAGE_SIZE;
export const PTE_SIZE = X86_PTE_SIZE;

/** One x86-64 paging-structure entry, level-agnostic (bit 7 is PS above the PT level, PAT in a PTE). */
export interface Pte {
  present: boolean;
  writable: boolean;
  user: boolean;
  accessed: boolean;
  dirty: boolean;
  large: boolean;
  address: number;
}

const ADDRESS_FIELD_LIMIT = 2 ** PTE_ADDRESS_FIELD_BITS;
/** 4 KiB pages one PT, PD and PDPT map: 512, 512^2, 512^3 (9 address bits per level). */
const PT_PAGES = PTES_PER_TABLE;
const PD_PAGES = PT_PAGES * PTES_PER_TABLE;
const PDPT_PAGES = PD_PAGES * PTES_PER_TABLE;

/**
 * Encodes an entry. Bits this codec does not name (PWT, PCD, G, ignored bits, XD) are written as 0.
 * Addresses up to the 52-bit format limit are accepted; bits 51:48 are reserved in this model and decode
 * with `reserved: true`, which is how tests build a reserved-bit entry.
 */
export function encodePte(pte: Partial<Pte> & { address: number }): bigint {
  const { address } = pte;
  if (!Number.isSafeInteger(address) || address < 0 || address % PAGE_SIZE !== 0 || address >= ADDRESS_FIELD_LIMIT) {
    throw new KernelError('EINVAL', `page-table entry address ${address} is not a 4 KiB aligned address below 2^52`);
  }
  let raw = BigInt(address);
  if (pte.present) raw |= PTE_P;
  if (pte.writable) raw |= PTE_RW;
  if (pte.user) raw |= PTE_US;
  if (pte.accessed) raw |= PTE_A;
  if (pte.dirty) raw |= PTE_D;
  if (pte.large) raw |= PTE_PS;
  return raw;
}

/**
 * Decodes an entry. `reserved` is true when address bits 51:48 are set (bits 51:MAXPHYADDR, SDM §4.5.4;
 * MAXPHYADDR = 48 here). Per the SDM everything else is defined or ignored with NXE = 1 and no PKE: PWT/PCD,
 * G, bits 11:8 and 62:52 are ignored, bit 63 is XD. Level-specific checks (bit 7 reserved in a PML4E, PS
 * unsupported in a PDPTE/PDE) belong to the walker, which knows the level.
 */
export function decodePte(raw: bigint): Pte & { reserved: boolean } {
  return {
    present: (raw & PTE_P) !== 0n,
    writable: (raw & PTE_RW) !== 0n,
    user: (raw & PTE_US) !== 0n,
    accessed: (raw & PTE_A) !== 0n,
    dirty: (raw & PTE_D) !== 0n,
    large: (raw & PTE_PS) !== 0n,
    address: Number(raw & PTE_ADDRESS_MASK),
    reserved: (raw & PTE_RESERVED_MASK) !== 0n,
  };
}

/** [pml4, pdpt, pd, pt] indexes = va[47:39], va[38:30], va[29:21], va[20:12] (SDM Figure 4-8). */
export function pageTableIndexes(va: number): [number, number, number, number] {
  if (!Number.isSafeInteger(va) || va < 0) throw new KernelError('EINVAL', `virtual address ${va} is not a non-negative integer`);
  const page = Math.floor(va / 2 ** PAGE_SHIFT);
  const n = PTES_PER_TABLE;
  return [Math.floor(page / PDPT_PAGES) % n, Math.floor(page / PD_PAGES) % n, Math.floor(page / PT_PAGES) % n, page % n];
}
