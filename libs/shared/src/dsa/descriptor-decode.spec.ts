import { encodeDescriptor, newDescriptor } from './descriptor';
import { decodeDescriptorInto, decodeDescriptorWordsInto, DESCRIPTOR_WORDS, descriptorWords, HOST_LITTLE_ENDIAN } from './descriptor-decode';

/** The slot's own word view and the bytes read little-endian, on the same 64 bytes: the same error (status, completion, message) or the same fields. */
function both(bytes: Buffer, maxTransferSize = 1 << 20): { bytes: unknown; words: unknown } {
  const slot = Buffer.alloc(64);
  slot.set(bytes);
  const a = newDescriptor();
  const b = newDescriptor();
  const ea = decodeDescriptorInto(slot, maxTransferSize, a);
  const eb = decodeDescriptorWordsInto(descriptorWords(slot), maxTransferSize, b);
  return { bytes: ea ?? a, words: eb ?? b };
}

// A deterministic PRNG: the cases are the same on every run.
function rng(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

(HOST_LITTLE_ENDIAN ? describe : describe.skip)('descriptor decode over u32 words (the work-queue slot view)', () => {
  it('decodes valid descriptors of every op from the slot view exactly as from its bytes', () => {
    const valid = [
      encodeDescriptor({ op: 'memmove', src: 0x400000, dst: 0x401000, length: 4096, completion: 0x402000 }, 7),
      encodeDescriptor({ op: 'memmove', src: 2 ** 52, dst: 0x10, length: 1, completion: 0x40, blockOnFault: true }, 0xfffff, true),
      encodeDescriptor({ op: 'fill', dst: 0x5000, length: 16, pattern: 0xfedcba9876543210n, completion: 0x40 }),
      encodeDescriptor({ op: 'compare', src: 0x10, dst: 0x20, length: 4, completion: 0x60 }),
      encodeDescriptor({ op: 'noop', completion: 0x80, privileged: true }),
    ];
    for (const d of valid) {
      const r = both(d);
      expect(r.words).toEqual(r.bytes);
      expect(r.words).toMatchObject({ op: expect.any(String) });
    }
  });

  it('refuses every invalid descriptor from the slot view with the status, completion address and message its bytes get', () => {
    const base = encodeDescriptor({ op: 'memmove', src: 0x1000, dst: 0x2000, length: 64, completion: 0x3000 }, 5);
    const next = rng(13);
    let refused = 0;
    for (let i = 0; i < 5000; i++) {
      const d = Buffer.from(base);
      // Flip one to three random bytes (opcode, flags, reserved, sizes, high address halves…).
      for (let n = 1 + (next() % 3); n > 0; n--) d[next() % 64] = next() & 0xff;
      const r = both(d, 1024 + (next() % 8192));
      expect(r.words).toEqual(r.bytes);
      if ('status' in (r.words as object)) refused++;
    }
    expect(refused).toBeGreaterThan(1000);
  });

  it('covers the corner cases: unaddressable completion, misaligned record, addresses beyond 2^53', () => {
    const d = encodeDescriptor({ op: 'memmove', src: 0x1000, dst: 0x2000, length: 64, completion: 0x3000 });
    for (const [at, v] of [[15, 0xff], [8, 0x08], [23, 0x01], [31, 0x20], [20, 0xff], [32, 0], [35, 0x01], [60, 1]] as const) {
      const c = Buffer.from(d);
      c[at] = v;
      const r = both(c);
      expect(r.words).toEqual(r.bytes);
    }
  });

  it('needs 16 words and an aligned view', () => {
    expect(() => decodeDescriptorWordsInto(new Uint32Array(DESCRIPTOR_WORDS - 1), 64, newDescriptor())).toThrow(/64/);
    expect(() => descriptorWords(Buffer.alloc(65).subarray(1))).toThrow(RangeError);
  });
});
