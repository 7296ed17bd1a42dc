import { errnoOf } from '../errno.testing';
import { CompletionStatus, decodeCompletion, encodeCompletion, encodeCompletionInto, encodeDescriptor, encodeDescriptorInto } from './descriptor';
import { decodeDescriptor } from './descriptor-decode';
import { DsaFlag } from './dsa.constants';


describe('DSA descriptor', () => {
  it('lays out a memmove at the DSA offsets', () => {
    const b = encodeDescriptor({ op: 'memmove', src: 0x1000, dst: 0x2000, length: 300, completion: 0x3000, pasid: 7 });
    expect(b.length).toBe(64);
    expect(b.readUInt32LE(0)).toBe(7);
    expect(b.readUIntLE(4, 3)).toBe(DsaFlag.crav | DsaFlag.rcr);
    expect(b[7]).toBe(0x03);
    expect(b.readBigUInt64LE(8)).toBe(0x3000n);
    expect(b.readBigUInt64LE(16)).toBe(0x1000n);
    expect(b.readBigUInt64LE(24)).toBe(0x2000n);
    expect(b.readUInt32LE(32)).toBe(300);
    expect(b.subarray(36).every((x) => x === 0)).toBe(true);
    const d = decodeDescriptor(b);
    expect(d).toEqual({
      ok: true,
      descriptor: { op: 'memmove', opcode: 3, pasid: 7, privileged: false, flags: 0x0c, completion: 0x3000, requestCompletion: true, blockOnFault: false, src: 0x1000, dst: 0x2000, length: 300, patternLo: 0, patternHi: 0 },
    });
  });

  it('carries block-on-fault in flag bit 1 (IDXD_OP_FLAG_BOF) and decodes it', () => {
    const b = encodeDescriptor({ op: 'memmove', src: 0x1000, dst: 0x2000, length: 8, completion: 0x40, blockOnFault: true });
    expect(b.readUIntLE(4, 3)).toBe(DsaFlag.crav | DsaFlag.rcr | DsaFlag.blockOnFault);
    expect(decodeDescriptor(b)).toMatchObject({ ok: true, descriptor: { blockOnFault: true, flags: DsaFlag.crav | DsaFlag.rcr | DsaFlag.blockOnFault } });
    expect(errnoOf(() => encodeDescriptor({ op: 'noop', completion: 0x40, blockOnFault: 1 as unknown as boolean }))).toBe('EINVAL');
  });

  it('round-trips fill (pattern at @16), compare (src2 at @24) and noop', () => {
    const pattern = 0x0102030405060708n;
    const fill = decodeDescriptor(encodeDescriptor({ op: 'fill', dst: 0x5000, length: 16, pattern, completion: 0x40 }));
    // The pattern's two little-endian u32 halves, as numbers (no BigInt on the device path).
    const halves = { patternLo: Number(pattern & 0xffffffffn), patternHi: Number(pattern >> 32n) };
    expect(fill).toMatchObject({ ok: true, descriptor: { op: 'fill', opcode: 4, dst: 0x5000, length: 16, ...halves } });
    const cmp = decodeDescriptor(encodeDescriptor({ op: 'compare', src: 0x10, dst: 0x20, length: 4, completion: 0x40 }));
    expect(cmp).toMatchObject({ ok: true, descriptor: { op: 'compare', opcode: 5, src: 0x10, dst: 0x20 } });
    const noop = encodeDescriptor({ op: 'noop', completion: 0x60, privileged: true });
    expect(noop[7]).toBe(0);
    expect(noop.readUInt32LE(0) >>> 31).toBe(1);
    expect(decodeDescriptor(noop)).toMatchObject({ ok: true, descriptor: { op: 'noop', privileged: true, completion: 0x60 } });
  });

  it('reports invalid descriptors as a device status, not an exception', () => {
    const base = (): Buffer => encodeDescriptor({ op: 'memmove', src: 0, dst: 0x1000, length: 8, completion: 0x40 });
    const bad = base();
    bad[7] = 0x7e;
    expect(decodeDescriptor(bad)).toMatchObject({ ok: false, status: CompletionStatus.badOpcode, completion: 0x40 });
    const flags = base();
    flags[4] |= DsaFlag.rci;
    expect(decodeDescriptor(flags)).toMatchObject({ ok: false, status: CompletionStatus.invalidFlags });
    const rsvd = base();
    rsvd[40] = 1;
    expect(decodeDescriptor(rsvd)).toMatchObject({ ok: false, status: CompletionStatus.nonZeroReserved });
    const pasidRsvd = base();
    pasidRsvd.writeUInt32LE(1 << 20, 0);
    expect(decodeDescriptor(pasidRsvd)).toMatchObject({ ok: false, status: CompletionStatus.nonZeroReserved });
    const zero = base();
    zero.writeUInt32LE(0, 32);
    expect(decodeDescriptor(zero)).toMatchObject({ ok: false, status: CompletionStatus.transferSizeRange });
    expect(decodeDescriptor(base(), 4)).toMatchObject({ ok: false, status: CompletionStatus.transferSizeRange });
    const unaligned = encodeDescriptor({ op: 'noop', completion: 0x41 });
    expect(decodeDescriptor(unaligned)).toMatchObject({ ok: false, status: CompletionStatus.completionAlign, completion: null });
    const noCrav = base();
    noCrav.writeUIntLE(0, 4, 3);
    expect(decodeDescriptor(noCrav)).toMatchObject({ ok: true, descriptor: { completion: null, requestCompletion: false } });
    const huge = base();
    huge.writeBigUInt64LE(1n << 60n, 16);
    expect(decodeDescriptor(huge)).toMatchObject({ ok: false, status: CompletionStatus.translationFail });
  });

  it('writes every byte of a reused buffer (reserved ones 0) and leaves it unchanged when the input is refused', () => {
    const b = Buffer.alloc(64, 0xa5);
    encodeDescriptorInto({ op: 'fill', dst: 0x5000, length: 16, pattern: 2n ** 64n - 1n, completion: 0x40 }, b);
    expect(b.readBigUInt64LE(16)).toBe(2n ** 64n - 1n);
    expect(b.subarray(36).every((x) => x === 0)).toBe(true);
    b.fill(0xa5);
    encodeDescriptorInto({ op: 'noop', completion: 0x40 }, b, 9, true);
    expect(b.readUInt32LE(0)).toBe((9 | 0x8000_0000) >>> 0);
    expect(b.subarray(16).every((x) => x === 0)).toBe(true);
    const before = Buffer.from(b);
    expect(errnoOf(() => encodeDescriptorInto({ op: 'memmove', src: -1, dst: 0, length: 8, completion: 0x40 }, b))).toBe('EINVAL');
    expect(b).toEqual(before);
    const rec = Buffer.alloc(40, 0xa5);
    encodeCompletionInto(rec, 2, 1, 1, 77, 2 ** 40 + 5);
    expect(decodeCompletion(rec)).toMatchObject({ status: 2, result: 1, faultInfo: 1, bytesCompleted: 77, faultAddress: 2 ** 40 + 5 });
    expect(rec.subarray(16, 32).every((x) => x === 0)).toBe(true);
    expect(rec.subarray(32).every((x) => x === 0xa5)).toBe(true); // only the record's 32 bytes are written
  });

  it('throws EINVAL for encoder misuse', () => {
    expect(errnoOf(() => encodeDescriptor({ op: 'memmove', dst: 0, length: 1, completion: 0 }))).toBe('EINVAL');
    expect(errnoOf(() => encodeDescriptor({ op: 'fill', dst: 0, length: 1, completion: 0 }))).toBe('EINVAL');
    expect(errnoOf(() => encodeDescriptor({ op: 'memmove', src: 0, dst: 0, length: 2 ** 32, completion: 0 }))).toBe('EINVAL');
    expect(errnoOf(() => encodeDescriptor({ op: 'bogus' as 'noop', completion: 0 }))).toBe('EINVAL');
    expect(errnoOf(() => decodeDescriptor(Buffer.alloc(32)))).toBe('EINVAL');
  });
});

describe('DSA completion record', () => {
  it('lays out status, result, fault info, bytes completed and fault address', () => {
    const b = encodeCompletion({ status: 2, result: 1, faultInfo: 1, bytesCompleted: 4096, faultAddress: 0x7000_1234 });
    expect(b.length).toBe(32);
    expect([b[0], b[1], b[2], b[3]]).toEqual([2, 1, 1, 0]);
    expect(b.readUInt32LE(4)).toBe(4096);
    expect(b.readBigUInt64LE(8)).toBe(0x7000_1234n);
    expect(decodeCompletion(b)).toEqual({ status: 2, statusName: 'pageFault', result: 1, faultInfo: 1, bytesCompleted: 4096, faultAddress: 0x7000_1234 });
    expect(decodeCompletion(Buffer.alloc(32))).toMatchObject({ status: 0, statusName: 'none' });
    expect(decodeCompletion(encodeCompletion({ status: 4 })).statusName).toBe('aborted');
    expect(errnoOf(() => encodeCompletion({ status: 256 }))).toBe('EINVAL');
  });
});
