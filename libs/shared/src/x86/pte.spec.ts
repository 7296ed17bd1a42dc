import { KernelError } from '../errno';
import { decodePte, encodePte, pageTableIndexes, PAGE_SIZE, PTE_SIZE } from './pte';

describe('x86 PTE codec', () => {
  it('round-trips every flag combination', () => {
    const names = ['present', 'writable', 'user', 'accessed', 'dirty', 'large'] as const;
    for (let mask = 0; mask < 1 << names.length; mask++) {
      const pte = { address: 0x1234_5000 } as Parameters<typeof encodePte>[0];
      names.forEach((n, i) => (pte[n] = (mask & (1 << i)) !== 0));
      const decoded = decodePte(encodePte(pte));
      for (const n of names) expect(decoded[n]).toBe(pte[n]);
      expect(decoded.address).toBe(0x1234_5000);
      expect(decoded.reserved).toBe(false);
    }
  });

  it('places the flags on their SDM bits', () => {
    expect(encodePte({ present: true, address: 0 })).toBe(1n);
    expect(encodePte({ writable: true, address: 0 })).toBe(2n);
    expect(encodePte({ user: true, address: 0 })).toBe(4n);
    expect(encodePte({ accessed: true, address: 0 })).toBe(0x20n);
    expect(encodePte({ dirty: true, address: 0 })).toBe(0x40n);
    expect(encodePte({ large: true, address: 0 })).toBe(0x80n);
    expect(encodePte({ address: 0xabc_d000 })).toBe(0xabcd000n);
    expect(PAGE_SIZE).toBe(4096);
    expect(PTE_SIZE).toBe(8);
  });

  it('flags address bits 51:48 as reserved and ignores ignored bits and XD', () => {
    expect(decodePte(encodePte({ present: true, address: 2 ** 48 })).reserved).toBe(true);
    expect(decodePte(encodePte({ present: true, address: 2 ** 51 })).reserved).toBe(true);
    expect(decodePte(encodePte({ present: true, address: 2 ** 48 - PAGE_SIZE })).reserved).toBe(false);
    const ignored = 1n | (1n << 63n) | (0x7ffn << 52n) | (0xfn << 8n) | 0x18n;
    const d = decodePte(ignored | 0x5000n);
    expect(d.reserved).toBe(false);
    expect(d.address).toBe(0x5000);
  });

  it('rejects unaligned, negative, fractional and ≥ 2^52 addresses with EINVAL', () => {
    for (const address of [0x1001, -4096, 4096.5, 2 ** 52, Number.MAX_SAFE_INTEGER + 1]) {
      expect(() => encodePte({ address })).toThrow(KernelError);
      try {
        encodePte({ address });
      } catch (e) {
        expect((e as KernelError).errno).toBe('EINVAL');
      }
    }
  });

  it('splits a VA into the four 9-bit indexes', () => {
    const va = (1 * 2 ** 39 + 2 * 2 ** 30 + 3 * 2 ** 21 + 4 * 2 ** 12 + 0x567);
    expect(pageTableIndexes(va)).toEqual([1, 2, 3, 4]);
    expect(pageTableIndexes(2 ** 47 - 1)).toEqual([255, 511, 511, 511]);
    expect(pageTableIndexes(2 ** 48 - 1)).toEqual([511, 511, 511, 511]);
    expect(pageTableIndexes(0)).toEqual([0, 0, 0, 0]);
  });
});
