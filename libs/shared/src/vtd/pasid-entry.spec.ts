import { errnoOf } from '../errno.testing';
import {
  decodePasidDirEntry,
  decodePasidEntry,
  encodePasidDirEntry,
  encodePasidEntry,
  PASID_ENTRY_SIZE,
  pasidDirEntryOffset,
  pasidTableEntryOffset,
  Pgtt,
} from './pasid-entry';
import { VTD_FAULT_REASONS } from './vtd.constants';


describe('VT-d scalable-mode PASID formats', () => {
  it('indexes the directory by vpasid >> 6 and the table by vpasid & 0x3f', () => {
    expect(pasidDirEntryOffset(0)).toBe(0);
    expect(pasidDirEntryOffset(63)).toBe(0);
    expect(pasidDirEntryOffset(64)).toBe(8);
    expect(pasidDirEntryOffset(0xfffff)).toBe((0xfffff >> 6) * 8);
    expect(pasidTableEntryOffset(64)).toBe(0);
    expect(pasidTableEntryOffset(65)).toBe(64);
    expect(pasidTableEntryOffset(63)).toBe(63 * 64);
    expect(errnoOf(() => pasidDirEntryOffset(1 << 20))).toBe('ERANGE');
    expect(errnoOf(() => pasidTableEntryOffset(-1))).toBe('ERANGE');
  });

  it('encodes a directory entry as bit 0 present | table address', () => {
    expect(encodePasidDirEntry({ present: true, tableGpa: 0x12_3000 })).toBe(0x12_3001n);
    expect(decodePasidDirEntry(0x12_3001n)).toEqual({ present: true, tableGpa: 0x12_3000, reserved: false });
    expect(decodePasidDirEntry(0x12_3000n)).toEqual({ present: false, tableGpa: 0x12_3000, reserved: false });
    expect(decodePasidDirEntry(0x12_3003n).reserved).toBe(true);
    expect(decodePasidDirEntry((1n << 48n) | 1n).reserved).toBe(true);
    expect(errnoOf(() => encodePasidDirEntry({ present: true, tableGpa: 0x1234 }))).toBe('EINVAL');
  });

  it('puts P and PGTT in qword 0 and FLPM and FLPTR in qword 2, little-endian', () => {
    const b = encodePasidEntry({ present: true, pgtt: Pgtt.FirstLevel, flpm: 0, flptr: 0xabcd_e000 });
    expect(b.length).toBe(PASID_ENTRY_SIZE);
    expect(b.readBigUInt64LE(0)).toBe(1n | (1n << 6n));
    expect(b[0]).toBe(0x41);
    expect(b.readBigUInt64LE(16)).toBe(0xabcd_e000n);
    expect(b.subarray(16, 24).toString('hex')).toBe('00e0cdab00000000');
    for (const off of [8, 24, 32, 40, 48, 56]) expect(b.readBigUInt64LE(off)).toBe(0n);
    const pt = encodePasidEntry({ present: true, pgtt: Pgtt.PassThrough, flpm: 1, flptr: 0 });
    expect(pt.readBigUInt64LE(0)).toBe(1n | (4n << 6n));
    expect(pt.readBigUInt64LE(16)).toBe(1n << 2n);
  });

  it('round-trips entries and flags every stray bit as reserved', () => {
    const e = { present: true, pgtt: Pgtt.Nested, flpm: 2, flptr: 0x7_f000_0000 };
    expect(decodePasidEntry(encodePasidEntry(e))).toEqual({ ...e, reserved: false });
    for (const [byte, bit] of [[0, 1], [1, 1], [8, 0], [16, 0], [16, 4], [24, 0], [63, 7]]) {
      const b = encodePasidEntry(e);
      b[byte] |= 1 << bit;
      expect(decodePasidEntry(b).reserved).toBe(true);
    }
    const high = encodePasidEntry(e);
    high.writeBigUInt64LE(high.readBigUInt64LE(16) | (1n << 50n), 16);
    expect(decodePasidEntry(high).reserved).toBe(true);
  });

  it('rejects out-of-range fields with EINVAL', () => {
    expect(errnoOf(() => encodePasidEntry({ present: true, pgtt: 8, flpm: 0, flptr: 0 }))).toBe('EINVAL');
    expect(errnoOf(() => encodePasidEntry({ present: true, pgtt: 1, flpm: 4, flptr: 0 }))).toBe('EINVAL');
    expect(errnoOf(() => encodePasidEntry({ present: true, pgtt: 1, flpm: 0, flptr: 0x10 }))).toBe('EINVAL');
    expect(errnoOf(() => decodePasidEntry(Buffer.alloc(63)))).toBe('EINVAL');
  });

  it('numbers fault reasons as the VT-d spec', () => {
    expect(VTD_FAULT_REASONS['pasid-entry-not-present'].code).toBe(0x59);
    expect(VTD_FAULT_REASONS['fl-not-present'].code).toBe(0x71);
    expect(VTD_FAULT_REASONS['fl-write-denied'].code).toBe(0x85);
  });
});
