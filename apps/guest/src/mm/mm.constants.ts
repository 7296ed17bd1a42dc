// Guest memory-management constants (x86-64 4-level paging, Intel SDM Vol. 3A §4.5).
import { CANONICAL_LIMIT, PAGE_SIZE } from '@app/shared/x86/x86.constants';

export { PAGE_SIZE };
/** mmap hands out GVAs upward from here (the top of the lower canonical half, where Linux puts mmap_base). */
export const MMAP_BASE = 0x7f00_0000_0000;
/** ...up to the end of the lower canonical half (2^47). */
export const MMAP_LIMIT = CANONICAL_LIMIT;
/** Page 0 is never handed out: a zero GPA means "none" in every format the guest writes. */
export const RESERVED_LOW_PAGES = 1;
/** Largest single mmap / memory access, so one request cannot pin the whole guest or one huge buffer. */
export const MAX_MMAP_BYTES = 256 * 1024 * 1024;
export const MAX_ACCESS_BYTES = 16 * 1024 * 1024;
/** Pids start at 1, like init. */
export const FIRST_PID = 1;
