import { KernelError } from '../errno';
import { PAGE_SIZE, PHYS_ADDR_BITS } from '../x86/x86.constants';
import { PASID_DIR_ENTRY_SIZE, PASID_ENTRY_SIZE, PASID_LIMIT, PASID_TABLE_ENTRIES, Pgtt } from './vtd.constants';

export { PASID_DIR_ENTRY_SIZE, PASID_ENTRY_SIZE, PASID_TABLE_ENTRIES, Pgtt };

const PRESENT = 1n;
/** Bits 51:12: the address field as this model reads it; bits above PHYS_ADDR_BITS are reserved (beyond HAW). */
const ADDRESS_MASK = ((1n << 52n) - 1n) & ~0xfffn;
const BEYOND_HAW = ~((1n << BigInt(PHYS_ADDR_BITS)) - 1n) & ((1n << 64n) - 1n);
const ADDRESS_FIELD_LIMIT = 2 ** 52;
const PGTT_SHIFT = 6n;
const PGTT_MASK = 0x7n << PGTT_SHIFT;
const FLPM_SHIFT = 2n;
const FLPM_MASK = 0x3n << FLPM_SHIFT;

function checkVpasid(vpasid: number): void {
  if (!Number.isInteger(vpasid) || vpasid < 0 || vpasid >= PASID_LIMIT) {
    throw new KernelError('ERANGE', `PASID ${vpasid} is outside [0, 2^20)`);
  }
}

function checkAddress(address: number, what: string): void {
  if (!Number.isSafeInteger(address) || address < 0 || address % PAGE_SIZE !== 0 || address >= ADDRESS_FIELD_LIMIT) {
    throw new KernelError('EINVAL', `${what} ${address} is not a 4 KiB aligned address below 2^52`);
  }
}

function checkField(value: number, max: number, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value > max) throw new KernelError('EINVAL', `${what} ${value} is outside [0, ${max}]`);
}

/** Byte offset of vpasid's entry in the PASID directory: (vpasid >> 6) * 8. */
export function pasidDirEntryOffset(vpasid: number): number {
  checkVpasid(vpasid);
  return (vpasid >> 6) * PASID_DIR_ENTRY_SIZE;
}

/** Byte offset of vpasid's entry in its PASID table: (vpasid & 0x3f) * 64. */
export function pasidTableEntryOffset(vpasid: number): number {
  checkVpasid(vpasid);
  return (vpasid & 0x3f) * PASID_ENTRY_SIZE;
}

/** Directory entry: bit 0 present, bits 63:12 the PASID table's address (VT-d §9.4). */
export function encodePasidDirEntry(e: { present: boolean; tableGpa: number }): bigint {
  checkAddress(e.tableGpa, 'PASID table address');
  return BigInt(e.tableGpa) | (e.present ? PRESENT : 0n);
}

/** reserved: bits 11:1 set, or address bits at/above the address width (VT-d SPD.3). */
export function decodePasidDirEntry(raw: bigint): { present: boolean; tableGpa: number; reserved: boolean } {
  return {
    present: (raw & PRESENT) !== 0n,
    tableGpa: Number(raw & ADDRESS_MASK),
    reserved: (raw & 0xffen) !== 0n || (raw & BEYOND_HAW) !== 0n,
  };
}

/** The fields of a scalable-mode PASID-table entry this project uses (DESIGN §3b). */
export interface PasidEntry {
  present: boolean;
  /** Qword 0 bits 8:6 (see Pgtt). */
  pgtt: number;
  /** Qword 2 bits 3:2 (0 = 4-level). */
  flpm: number;
  /** Qword 2 bits 63:12: first-stage root (the process's CR3). */
  flptr: number;
}

/** 64 bytes, little-endian; every bit not named by PasidEntry is 0. */
export function encodePasidEntry(e: PasidEntry): Buffer {
  checkField(e.pgtt, 7, 'PGTT');
  checkField(e.flpm, 3, 'FLPM');
  checkAddress(e.flptr, 'FLPTR');
  const b = Buffer.alloc(PASID_ENTRY_SIZE);
  b.writeBigUInt64LE((e.present ? PRESENT : 0n) | (BigInt(e.pgtt) << PGTT_SHIFT), 0);
  b.writeBigUInt64LE(BigInt(e.flptr) | (BigInt(e.flpm) << FLPM_SHIFT), 16);
  return b;
}

/**
 * reserved: any bit outside {qword 0: P, PGTT; qword 2: FLPM, FLPTR} is set, or FLPTR has bits at/above the
 * address width (VT-d SPT.3). The VMM decides which PGTT/FLPM values it accepts (SPT.4).
 */
export function decodePasidEntry(b: Buffer): PasidEntry & { reserved: boolean } {
  if (b.length !== PASID_ENTRY_SIZE) throw new KernelError('EINVAL', `PASID entry is ${b.length} bytes, expected ${PASID_ENTRY_SIZE}`);
  const q = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => b.readBigUInt64LE(i * 8));
  const otherQwords = q.some((v, i) => i !== 0 && i !== 2 && v !== 0n);
  const q0Reserved = (q[0] & ~(PRESENT | PGTT_MASK)) !== 0n;
  const q2Reserved = (q[2] & 0xff3n) !== 0n || (q[2] & BEYOND_HAW) !== 0n; // bits 11:4, 1:0
  return {
    present: (q[0] & PRESENT) !== 0n,
    pgtt: Number((q[0] & PGTT_MASK) >> PGTT_SHIFT),
    flpm: Number((q[2] & FLPM_MASK) >> FLPM_SHIFT),
    flptr: Number(q[2] & ADDRESS_MASK),
    reserved: otherQwords || q0Reserved || q2Reserved,
  };
}
