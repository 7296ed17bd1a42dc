import { IdTable } from './id-table';

describe('IdTable', () => {
  it('keeps a value per id across chunks, counts them, and lists them in id order', () => {
    const t = new IdTable<string>(5000);
    for (const id of [4999, 3, 1024, 1023, 0, 2048]) t.set(id, `v${id}`);
    expect(t.size).toBe(6);
    expect(t.get(1023)).toBe('v1023');
    expect(t.get(1024)).toBe('v1024');
    expect(t.get(1025)).toBeUndefined();
    expect(t.values()).toEqual(['v0', 'v3', 'v1023', 'v1024', 'v2048', 'v4999']);
    // Setting an id again replaces its value without counting it twice.
    t.set(3, 'again');
    expect(t.size).toBe(6);
    expect(t.get(3)).toBe('again');
  });

  it('delete empties only its slot and says whether it held a value', () => {
    const t = new IdTable<number>(2048);
    t.set(7, 70);
    t.set(8, 80);
    expect(t.delete(7)).toBe(true);
    expect(t.delete(7)).toBe(false);
    expect(t.delete(1500)).toBe(false);
    expect(t.get(7)).toBeUndefined();
    expect(t.get(8)).toBe(80);
    expect(t.size).toBe(1);
    expect(t.values()).toEqual([80]);
  });

  it('answers undefined for anything that is not an id, as a Map would, and refuses to store one', () => {
    const t = new IdTable<string>(2048);
    t.set(1, 'one');
    // 1.5 would read slot 1 if the index were only masked.
    for (const bad of [1.5, -1, 2 ** 32 + 1, NaN, 4096, Infinity]) {
      expect(t.get(bad)).toBeUndefined();
      expect(t.delete(bad)).toBe(false);
      expect(() => t.set(bad, 'x')).toThrow(RangeError);
    }
    expect(t.size).toBe(1);
    expect(t.values()).toEqual(['one']);
  });

  it('lists each chunk up to its last value, after deletes and refills too', () => {
    const t = new IdTable<number>(4096);
    for (const id of [1023, 1024, 1025, 3000]) t.set(id, id);
    t.delete(1024);
    expect(t.values()).toEqual([1023, 1025, 3000]);
    // The chunk of 3000 empties and fills again at its first slot; 1023 is the first chunk's only (and last) slot.
    t.delete(3000);
    t.set(2048, 2048);
    t.set(1023, 1);
    expect(t.values()).toEqual([1, 1025, 2048]);
    expect(t.size).toBe(3);
  });

  it('refuses a capacity it cannot index', () => {
    for (const bad of [0, -5, 1.5, 2 ** 31 + 1]) expect(() => new IdTable(bad)).toThrow(RangeError);
  });
});
