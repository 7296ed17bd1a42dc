import { IotlbIndex, NONE } from './iotlb-index';

// A deterministic PRNG: the same operations on every run.
function rng(seed: number): (n: number) => number {
  let x = seed >>> 0;
  return (n) => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
}

describe('IotlbIndex: the IOTLB tag store', () => {
  it('agrees with a Map model through random adds, removes and clears (colliding tags, big ids and pages included)', () => {
    const capacity = 64;
    const index = new IotlbIndex(capacity);
    const model = new Map<string, number>(); // "table/page" → slot
    const free: number[] = Array.from({ length: capacity }, (_, i) => i);
    const next = rng(7);
    // Few tables and pages, so tags repeat and buckets collide; some beyond 2^32 (both halves hashed).
    const tables = [1, 2, 3, 2 ** 33 + 1, 2 ** 40];
    const pages = [0, 1, 2, 511, 2 ** 31, 2 ** 32 + 1, 2 ** 36 - 1];
    const check = (): void => {
      for (const t of tables) {
        let count = 0;
        for (const p of pages) {
          const slot = model.get(`${t}/${p}`);
          expect(index.find(t, p)).toBe(slot ?? NONE);
          if (slot !== undefined) count++;
        }
        expect(index.countOf(t)).toBe(count);
        const listed: number[] = [];
        for (let s = index.firstOf(t); s !== NONE; s = index.nextInTable(s)) listed.push(s);
        expect(listed.sort((a, b) => a - b)).toEqual([...model.entries()].filter(([k]) => k.startsWith(`${t}/`)).map(([, s]) => s).sort((a, b) => a - b));
      }
      const live = new Set([...model.keys()].map((k) => Number(k.split('/')[0])));
      expect(index.tables()).toEqual([...live].sort((a, b) => a - b));
    };
    for (let i = 0; i < 4000; i++) {
      const op = next(100);
      const t = tables[next(tables.length)];
      const p = pages[next(pages.length)];
      const key = `${t}/${p}`;
      if (op < 60) {
        if (model.has(key) || free.length === 0) continue;
        const slot = free.splice(next(free.length), 1)[0];
        index.add(slot, t, p);
        model.set(key, slot);
      } else if (op < 98) {
        const slot = model.get(key);
        if (slot === undefined) continue;
        index.remove(slot);
        model.delete(key);
        free.push(slot);
      } else {
        index.clear();
        model.clear();
        free.splice(0, free.length, ...Array.from({ length: capacity }, (_, s) => s));
      }
      if (i % 20 === 0) check();
    }
    check();
  });
});
