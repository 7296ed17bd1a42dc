// The fuzzer's only source of choices: a seeded PRNG (xoshiro128**, seeded through SHA-256 of the seed and a
// stream name, as the stack's own seeded streams are), so a seed gives the same operations on any machine.
import { SeededStream } from '@app/shared/replay/seeded';

export class Prng {
  private readonly s = new Uint32Array(4);

  constructor(seed: number, stream = 'fuzz') {
    const b = new SeededStream(seed, stream).bytes(16);
    for (let i = 0; i < 4; i++) this.s[i] = b.readUInt32LE(i * 4) || 1;
  }

  /** The next 32 random bits. */
  next(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return n <= 1 ? 0 : Math.floor((this.next() / 2 ** 32) * n);
  }

  /** An integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.next() / 2 ** 32 < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from nothing');
    return items[this.int(items.length)];
  }

  /** One of `choices` by weight (weights <= 0 never); null if none has weight. */
  weighted<T>(choices: ReadonlyArray<readonly [number, T]>): T | null {
    const total = choices.reduce((n, [w]) => n + Math.max(0, w), 0);
    if (total <= 0) return null;
    let at = (this.next() / 2 ** 32) * total;
    for (const [w, v] of choices) {
      if (w <= 0) continue;
      if (at < w) return v;
      at -= w;
    }
    return choices.filter(([w]) => w > 0).at(-1)?.[1] ?? null;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
