import { KernelError } from '../errno';
import { decodePte, encodePte, pageTableIndexes, type Pte } from './pte';
import { CANONICAL_LIMIT, PAGE_SIZE, PAGING_LEVELS as LEVELS, PTE_SIZE } from './x86.constants';
import type { WalkMemory } from './walk';

export interface PageFlags {
  writable: boolean;
  user: boolean;
}

function checkVa(va: number): void {
  if (!Number.isSafeInteger(va) || va < 0 || va >= CANONICAL_LIMIT || va % PAGE_SIZE !== 0) {
    throw new KernelError('EINVAL', `virtual address ${va} is not a 4 KiB aligned canonical address`);
  }
}

function checkTable(address: number, what: string): void {
  if (!Number.isSafeInteger(address) || address < 0 || address % PAGE_SIZE !== 0) {
    throw new KernelError('EINVAL', `${what} ${address} is not a 4 KiB aligned address`);
  }
}

function read(mem: WalkMemory, address: number): bigint {
  const raw = mem.readU64(address);
  if (raw === null) throw new KernelError('EFAULT', `page-table entry at ${address} is not readable`);
  return raw;
}

function write(mem: Required<WalkMemory>, address: number, value: bigint): void {
  if (!mem.writeU64(address, value)) throw new KernelError('EFAULT', `page-table entry at ${address} is not writable`);
}

/** Intermediate entries grant everything; the leaf decides (as Linux's _PAGE_TABLE does). */
const tableEntry = (address: number): bigint => encodePte({ present: true, writable: true, user: true, address });

/**
 * The leaf entry for va, or where the walk stops: `level` is the first level whose entry is not present
 * (0 when the leaf is present). Throws EINVAL on a reserved or large-page entry (this writer never makes one).
 */
export function findLeaf(mem: WalkMemory, cr3: number, va: number): { level: number; entryAddress: number; pte: Pte } {
  checkVa(va);
  checkTable(cr3, 'cr3');
  const indexes = pageTableIndexes(va);
  let table = cr3;
  for (let level = LEVELS; ; level--) {
    const entryAddress = table + indexes[LEVELS - level] * PTE_SIZE;
    const pte = decodePte(read(mem, entryAddress));
    if (!pte.present) return { level, entryAddress, pte };
    if (pte.reserved || (pte.large && level > 1)) {
      throw new KernelError('EINVAL', `page-table entry at ${entryAddress} (level ${level}) has reserved or large-page bits`);
    }
    if (level === 1) return { level: 0, entryAddress, pte };
    table = pte.address;
  }
}

/**
 * Maps one 4 KiB page va → pa. Missing tables come from allocTable (zeroed by the caller). The new chain is
 * built bottom-up and linked by a single final write, so a concurrent walker never sees a half-built path and
 * a failure (EEXIST, EINVAL, EFAULT, or allocTable throwing) leaves the existing tables unchanged. Tables
 * already handed out by allocTable before it threw belong to the caller.
 */
export function mapPage(mem: Required<WalkMemory>, cr3: number, va: number, pa: number, flags: PageFlags, allocTable: () => number): void {
  const leafValue = encodePte({ present: true, writable: flags.writable, user: flags.user, address: pa });
  const found = findLeaf(mem, cr3, va);
  if (found.level === 0) throw new KernelError('EEXIST', `virtual address ${va} is already mapped (to ${found.pte.address})`);
  const indexes = pageTableIndexes(va);
  // Tables for levels found.level-1 … 1, top first.
  const fresh: number[] = [];
  for (let level = found.level - 1; level >= 1; level--) {
    const table = allocTable();
    checkTable(table, 'allocated page table');
    fresh.push(table);
  }
  // Fill from the bottom: the leaf into the deepest new table, then each new table into its parent.
  let value = leafValue;
  for (let i = fresh.length - 1; i >= 0; i--) {
    const level = found.level - 1 - i;
    write(mem, fresh[i] + indexes[LEVELS - level] * PTE_SIZE, value);
    value = tableEntry(fresh[i]);
  }
  write(mem, found.entryAddress, value);
}

/** Clears the leaf for va; tables are kept. Returns false when va was not mapped. The caller flushes TLBs. */
export function unmapPage(mem: Required<WalkMemory>, cr3: number, va: number): boolean {
  const found = findLeaf(mem, cr3, va);
  if (found.level !== 0) return false;
  write(mem, found.entryAddress, 0n);
  return true;
}

/** Changes R/W and U/S of the leaf for va, keeping its address and A/D. Returns false when va is not mapped. */
export function protectPage(mem: Required<WalkMemory>, cr3: number, va: number, flags: PageFlags): boolean {
  const found = findLeaf(mem, cr3, va);
  if (found.level !== 0) return false;
  write(mem, found.entryAddress, encodePte({ ...found.pte, writable: flags.writable, user: flags.user }));
  return true;
}
