// x86-64 4-level paging constants (Intel SDM Vol. 3A §4.5, Tables 4-14..4-20; same format as VT-d first-stage, VT-d spec §9.7).

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;
/** One paging-structure entry is 8 bytes; a table holds 512 of them, so each level consumes 9 bits of the linear address (SDM §4.5.4). */
export const PTE_SIZE = 8;
export const PTES_PER_TABLE = PAGE_SIZE / PTE_SIZE;
export const PAGING_LEVELS = 4;

/** Entry bits this model reads or writes (SDM Table 4-19/4-20); PWT, PCD, G and XD are written 0 and ignored. */
export const PTE_P = 1n << 0n;
export const PTE_RW = 1n << 1n;
export const PTE_US = 1n << 2n;
export const PTE_A = 1n << 5n;
export const PTE_D = 1n << 6n;
/** PS in PDPTE/PDE (large page); PAT in a 4 KiB PTE; reserved in a PML4E (SDM Table 4-15). */
export const PTE_PS = 1n << 7n;

/**
 * The same bits as numbers, for walkers that read an entry as two little-endian u32 halves (no BigInt on the
 * IOMMU's path): flags in the low half; address bits 51:32 and the reserved bits 51:48 in the high half.
 */
export const PTE_LO_P = 1 << 0;
export const PTE_LO_RW = 1 << 1;
export const PTE_LO_US = 1 << 2;
export const PTE_LO_A = 1 << 5;
export const PTE_LO_D = 1 << 6;
export const PTE_LO_PS = 1 << 7;
/** Address bits 31:12 of the low half, bits 51:32 of the high half. */
export const PTE_LO_ADDRESS_MASK = 0xffff_f000;
export const PTE_HI_ADDRESS_MASK = 0x000f_ffff;

/** Bits 51:12 hold the address field of the format (architectural MAXPHYADDR limit is 52). */
export const PTE_ADDRESS_FIELD_BITS = 52;
export const PTE_ADDRESS_MASK = ((1n << 52n) - 1n) & ~0xfffn;

/**
 * The model's physical address width: MAXPHYADDR for the CPU walk and HAW for the IOMMU (QEMU intel-iommu
 * aw-bits=48). Address bits 51:48 of any entry are reserved (SDM §4.5.4 "bits 51:M", VT-d §9.7 "bits 51:HAW").
 */
export const PHYS_ADDR_BITS = 48;
export const PHYS_ADDR_LIMIT = 2 ** PHYS_ADDR_BITS;
export const PTE_RESERVED_MASK = ((1n << 52n) - 1n) & ~((1n << BigInt(PHYS_ADDR_BITS)) - 1n);
/** PTE_RESERVED_MASK's bits in the high half of an entry (bits 51:48 → 19:16). */
export const PTE_HI_RESERVED_MASK = Number(PTE_RESERVED_MASK >> 32n);

/**
 * Linear addresses are 48 bits, canonical when bits 63:47 equal bit 47 (SDM §3.3.7.1). JS numbers cannot
 * hold upper-half addresses, so in this model a canonical address is one in [0, 2^47).
 */
export const CANONICAL_LIMIT = 2 ** 47;
