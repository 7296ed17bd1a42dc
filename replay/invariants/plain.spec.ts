// plainCopy is the JSON round trip of a snapshot, without the string: the same value for every kind JSON knows.
import { newKernel } from '../../apps/host-kernel/src/kernel.testing';
import { kernelState } from '../../apps/host-kernel/src/kernel-state';
import { plainCopy } from './plain';

const roundTrip = (v: unknown): unknown => {
  const text = JSON.stringify(v);
  return text === undefined ? undefined : JSON.parse(text);
};

describe('plainCopy', () => {
  class Point {
    constructor(
      readonly x: number,
      readonly y?: number,
    ) {}
  }
  const cases: Array<[string, unknown]> = [
    ['primitives', { s: 'a', n: 1.5, t: true, f: false, z: null, neg: -0 }],
    ['undefined, functions and symbols in an object are left out', { a: undefined, b: () => 1, c: Symbol('s'), d: 1 }],
    ['…and are null in an array, as a hole is', [undefined, () => 1, Symbol('s'), , 2]],
    ['non-finite numbers are null', { nan: NaN, inf: Infinity, ninf: [-Infinity] }],
    ['nesting and key order (integer keys first)', { b: [{ y: 1, x: [1, [2, { k: 'v' }]] }], a: {}, 2: 'two', 1: 'one' }],
    ['a class instance, a Buffer, a Date, a Map', { p: new Point(1), buf: Buffer.from('hi'), when: new Date(0), m: new Map([[1, 2]]) }],
    ['a toJSON method gets its key', { k: { toJSON: (key: string) => `key=${key}` }, list: [{ toJSON: (key: string) => key }] }],
    ['an own __proto__ key', JSON.parse('{"__proto__": {"x": 1}, "y": 2}')],
    ['an object without a prototype', Object.assign(Object.create(null), { a: 1 })],
    ['a toJSON that gives undefined', { gone: { toJSON: () => undefined }, kept: 1 }],
  ];
  it.each(cases)('%s: the same as JSON.parse(JSON.stringify())', (_name, v) => {
    const got = plainCopy(v);
    expect(JSON.stringify(got)).toBe(JSON.stringify(roundTrip(v)));
    expect(got).toStrictEqual(roundTrip(v));
  });

  it('copies, sharing nothing with its input', () => {
    const v = { a: [{ b: 1 }] };
    const got = plainCopy(v);
    got.a[0].b = 2;
    expect(v.a[0].b).toBe(1);
  });

  it('gives a kernel snapshot as JSON would', () => {
    const k = newKernel();
    const { pid } = k.createProcess('p');
    k.mmap(pid, 8 * 4096);
    const s = kernelState(k.kernel);
    expect(plainCopy(s)).toStrictEqual(roundTrip(s));
  });

  it('gives nothing for undefined, as JSON.stringify does', () => {
    expect(plainCopy(undefined)).toBeUndefined();
  });
});
