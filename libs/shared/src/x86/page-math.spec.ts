import { modPow2, pageBaseOf, pageOffsetOf } from './page-math';

describe('page arithmetic without % of a double', () => {
  it('is % for non-negative integers up to 2^53, small ones and doubles above 2^32 alike', () => {
    const xs = [0, 1, 4095, 4096, 4097, 0x40_2000, 2 ** 31 - 1, 2 ** 31, 2 ** 32 + 5, 2 ** 47 - 1, 2 ** 52 + 4097, Number.MAX_SAFE_INTEGER];
    for (const x of xs) {
      expect(pageOffsetOf(x)).toBe(x % 4096);
      expect(pageBaseOf(x)).toBe(x - (x % 4096));
      for (const m of [8, 32, 512, 4096]) expect(modPow2(x, m)).toBe(x % m);
    }
  });

  it('keeps NaN and non-integers as % does', () => {
    expect(pageOffsetOf(Number.NaN)).toBeNaN();
    expect(pageOffsetOf(4096.5)).toBe(0.5);
    expect(pageOffsetOf(Number.POSITIVE_INFINITY)).toBeNaN();
  });
});
