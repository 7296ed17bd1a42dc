// CANONICAL_LIMIT (x86-64 canonical lower half, Intel SDM Vol. 1 §3.3.7.1) and PAGE_SIZE (4 KiB base page, SDM
// Vol. 3A §4.5): see libs/shared x86.constants.
import { pageOffsetOf } from '@app/shared/x86/page-math';
import { CANONICAL_LIMIT, PAGE_SIZE as X86_PAGE_SIZE } from '@app/shared/x86/x86.constants';

/** A const, not a re-export: CommonJS turns `export { X }` of an import into a getter called on every use. */
export const PAGE_SIZE = X86_PAGE_SIZE;
/** 1 MiB = 256 frames. */
export const FRAMES_PER_MIB = (1024 * 1024) / PAGE_SIZE;
/** Where anonymous mmaps start in every process (an arbitrary user-space address, like mmap_base). */
export const MMAP_BASE = 0x7f00_0000_0000;
/**
 * End of the user address space: the canonical lower half, 2^47 (x86-64 TASK_SIZE_MAX, 4-level paging). Only
 * 2^40 bytes lie between MMAP_BASE and it; an mmap that would end beyond is ENOMEM, as get_unmapped_area's is.
 */
export const MMAP_END = CANONICAL_LIMIT;
/** Largest single mmap: the whole 2^40-byte window above MMAP_BASE (Linux answers ENOMEM beyond). */
export const MMAP_MAX_LENGTH = 2 ** 40;
/** Largest single process/guest memory read or write (bounds one REST payload). */
export const MEMORY_IO_MAX = 16 * 1024 * 1024;

export const pageAligned = (x: number): boolean => Number.isSafeInteger(x) && x >= 0 && x % PAGE_SIZE === 0;
export const pageIndex = (address: number): number => Math.floor(address / PAGE_SIZE);
/** address mod PAGE_SIZE without `%` of a double (a C call in V8; see page-math.ts): non-negative addresses. */
export const pageOffset = pageOffsetOf;
