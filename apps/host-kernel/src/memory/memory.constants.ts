/** x86 base page: 4 KiB (Intel SDM Vol. 3A §4.5). */
export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;
/** 1 MiB = 256 frames. */
export const FRAMES_PER_MIB = (1024 * 1024) / PAGE_SIZE;
/** Where anonymous mmaps start in every process (an arbitrary user-space address, like mmap_base). */
export const MMAP_BASE = 0x7f00_0000_0000;
/** Largest single mmap (the simulated VA space is 2^46 bytes above MMAP_BASE; Linux answers ENOMEM beyond). */
export const MMAP_MAX_LENGTH = 2 ** 40;
/** Largest single process/guest memory read or write (bounds one REST payload). */
export const MEMORY_IO_MAX = 16 * 1024 * 1024;

export const pageAligned = (x: number): boolean => Number.isSafeInteger(x) && x >= 0 && x % PAGE_SIZE === 0;
export const pageIndex = (address: number): number => Math.floor(address / PAGE_SIZE);
export const pageOffset = (address: number): number => address % PAGE_SIZE;
