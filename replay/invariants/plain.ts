// A snapshot as it would cross the wire: exactly what `JSON.parse(JSON.stringify(v))` gives, without the string in
// between. The in-process source copies every app's state this way after each fuzz step (tens of kilobytes), and
// the JSON round trip was a quarter of a step's time. Plain objects, arrays, strings, finite numbers, booleans and
// null are copied here; anything JSON treats its own way (a class instance, a toJSON method, a bigint) goes through
// JSON itself, so the answer is the same either way.

/** The JSON round trip of `v` (undefined → undefined, as `JSON.stringify` gives nothing to parse back). */
export function plainCopy<T>(v: T): T {
  return copy(v, '') as T;
}

/** `v` as JSON would give it back; `key` is its key in its holder (what JSON hands a toJSON method, as a string). */
function copy(v: unknown, key: string | number): unknown {
  if (v === null) return null;
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return v;
    case 'number':
      return num(v);
    case 'object':
      return Array.isArray(v) ? copyArray(v, key) : copyObject(v as Record<string, unknown>, key);
    case 'undefined':
    case 'function':
    case 'symbol':
      return undefined;
    default:
      return viaJson(v, key);
  }
}

/** A number as JSON writes it: a non-finite one is null, and -0 + 0 is 0. */
const num = (v: number): number | null => (Number.isFinite(v) ? v + 0 : null);

// Both loops copy a number in place (most of a snapshot: frame numbers, pin counts) and recurse for the rest.

function copyArray(a: unknown[], key: string | number): unknown {
  if (Object.getPrototypeOf(a) !== Array.prototype || typeof (a as { toJSON?: unknown }).toJSON === 'function') return viaJson(a, key);
  const out = new Array<unknown>(a.length);
  for (let i = 0; i < a.length; i++) {
    const v = a[i];
    if (typeof v === 'number') out[i] = num(v);
    else {
      const x = copy(v, i);
      out[i] = x === undefined ? null : x; // a hole, undefined, a function: null in an array
    }
  }
  return out;
}

function copyObject(o: Record<string, unknown>, key: string | number): unknown {
  const proto = Object.getPrototypeOf(o) as unknown;
  if ((proto !== Object.prototype && proto !== null) || typeof o.toJSON === 'function') return viaJson(o, key);
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(o)) {
    const v = o[k];
    const x = typeof v === 'number' ? num(v) : copy(v, k);
    if (x === undefined) continue;
    if (k === '__proto__') own(out, k, x);
    else out[k] = x;
  }
  return out;
}

/** out[k] = x as JSON.parse sets it: an own property even for `__proto__`. */
function own(out: Record<string, unknown>, k: string, x: unknown): void {
  if (k === '__proto__') Object.defineProperty(out, k, { value: x, enumerable: true, writable: true, configurable: true });
  else out[k] = x;
}

/** JSON's own answer for `v`, held under `key` as it was (toJSON gets that key). */
function viaJson(v: unknown, key: string | number): unknown {
  const k = String(key);
  const holder: Record<string, unknown> = {};
  own(holder, k, v);
  const parsed = JSON.parse(JSON.stringify(holder)) as Record<string, unknown>;
  return Object.prototype.hasOwnProperty.call(parsed, k) ? parsed[k] : undefined;
}
