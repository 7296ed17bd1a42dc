// Malformed requests generated from a route's OpenAPI body schema (openapi/*.json): whole bodies that are no
// JSON object, or of the wrong content type, or too big, or too deep; and, field by field, each field of the
// wrong type, out of its range (2^53 and past), too long, outside its enum, missing, plus fields nobody declared.
// Each variant spoils one thing of a body that is otherwise of the right shape, so what refuses it is the check
// of that one thing.
import { plausible, resolve, type Route, type Schema } from './openapi-routes';

export interface Variant {
  what: string;
  /** The raw body (a string: the campaign sends it as is). */
  raw: string;
  contentType?: string;
}

const TWO_53 = 2 ** 53;
/** Over the 8 MB body limit of every app (libs/shared/src/nest/bootstrap.ts). */
const OVERSIZE = 9 * 1024 * 1024;

const HUGE = 1 << 20;
let oversize: string | undefined;
/** One string of OVERSIZE bytes, built once for every route. */
const oversized = (): string => (oversize ??= JSON.stringify('a'.repeat(OVERSIZE)));

const deepArray = (n: number): string => `${'['.repeat(n)}${']'.repeat(n)}`;
const deepObject = (n: number): string => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`;

/** Values no field of this schema may take. */
function badValues(s: Schema): Array<[string, string]> {
  const out: Array<[string, string]> = [['null', 'null']];
  const type = s.enum ? 'enum' : s.type;
  if (type !== 'string' && type !== 'enum') out.push(['a string', '"12"']);
  if (type !== 'number' && type !== 'integer') out.push(['a number', '12']);
  if (type !== 'boolean') out.push(['a boolean', 'true']);
  if (type !== 'object') out.push(['an object', '{"x":1}']);
  if (type === 'number' || type === 'integer') {
    if (s.minimum !== undefined) out.push([`below its minimum ${s.minimum}`, String(s.minimum - 1)]);
    if (s.maximum !== undefined && s.maximum < TWO_53) out.push([`above its maximum ${s.maximum}`, String(s.maximum + 1)]);
    out.push(['2^53+1 as written', '9007199254740993'], ['2^64 as written', '18446744073709551616']);
  }
  if (type === 'string') {
    out.push([`a string of ${(s.maxLength ?? HUGE) + 1} characters`, JSON.stringify('a'.repeat((s.maxLength ?? HUGE) + 1))]);
    if (s.pattern) out.push(['a control character', JSON.stringify('\u0000\u0001')]);
  }
  if (type === 'enum') out.push(['outside its enum', JSON.stringify('definitely-not-a-member')]);
  return out;
}

function fieldVariants(route: Route, schema: Schema, prefix: string): Variant[] {
  const base = plausible(route.app, schema) as Record<string, unknown>;
  const out: Variant[] = [];
  const withField = (name: string, rawValue: string): string => {
    const rest = Object.entries(base).filter(([k]) => k !== name).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`);
    return `{${[...rest, `${JSON.stringify(name)}:${rawValue}`].join(',')}}`;
  };
  for (const [name, prop] of Object.entries(schema.properties ?? {})) {
    const p = resolve(route.app, prop);
    for (const [what, raw] of badValues(p)) out.push({ what: `${prefix}${name} ${what}`, raw: withField(name, raw) });
    if (p.type === 'object' || prop.$ref) {
      for (const inner of fieldVariants(route, p, `${prefix}${name}.`)) out.push({ what: inner.what, raw: withField(name, inner.raw) });
    }
  }
  for (const name of schema.required ?? []) {
    const rest = { ...base };
    delete rest[name];
    out.push({ what: `${prefix}${name} missing`, raw: JSON.stringify(rest) });
  }
  return out;
}

/** Every malformed variant of one route's body. */
export function badInputs(route: Route): Variant[] {
  const schema = route.body ?? {};
  const good = JSON.stringify(plausible(route.app, schema));
  const withExtra = (field: string): string => (good === '{}' ? `{${field}}` : `${good.slice(0, -1)},${field}}`);
  return [
    { what: 'truncated JSON', raw: good.slice(0, -1) },
    { what: 'not JSON', raw: 'hello' },
    { what: 'single quotes', raw: "{'a':1}" },
    { what: 'a comment', raw: '{/* x */}' },
    { what: 'trailing garbage', raw: `${good} x` },
    { what: 'NaN', raw: 'NaN' },
    { what: 'an array', raw: `[${good}]` },
    { what: 'a string', raw: JSON.stringify(good) },
    { what: 'a number', raw: '42' },
    { what: 'null', raw: 'null' },
    { what: 'true', raw: 'true' },
    { what: 'an empty body', raw: '' },
    { what: 'the right body as text/plain', raw: good, contentType: 'text/plain' },
    { what: 'a form', raw: 'a=1&b=2', contentType: 'application/x-www-form-urlencoded' },
    { what: 'the right body as application/xml', raw: good, contentType: 'application/xml' },
    { what: 'arrays nested 3000 deep', raw: withExtra(`"x":${deepArray(3000)}`) },
    { what: 'arrays nested 1,000,000 deep', raw: deepArray(1_000_000) },
    { what: 'objects nested 3000 deep', raw: deepObject(3000) },
    { what: `a body of ${OVERSIZE} bytes`, raw: withExtra(`"x":${oversized()}`) },
    { what: 'a string field of 1 MiB', raw: withExtra(`"x":${JSON.stringify('s'.repeat(HUGE))}`) },
    { what: 'an unknown field', raw: withExtra('"definitelyNotAField":1') },
    { what: 'an unknown field of 1e999', raw: withExtra('"x":1e999') },
    { what: 'an unknown field of -2^53', raw: withExtra(`"x":${-TWO_53}`) },
    { what: 'a field named __proto__', raw: withExtra('"__proto__":{"x":1}') },
    { what: 'a field named constructor', raw: withExtra('"constructor":{"name":"x"}') },
    { what: 'a field named prototype', raw: withExtra('"prototype":1') },
    { what: 'a key of 1 MiB', raw: withExtra(`${JSON.stringify('k'.repeat(1 << 20))}:1`) },
    { what: '10,000 unknown fields', raw: withExtra(Array.from({ length: 10_000 }, (_, i) => `"f${i}":${i}`).join(',')) },
    ...(route.body ? fieldVariants(route, schema, '') : []),
  ];
}
