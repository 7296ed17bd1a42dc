// Body validators compiled once per DTO class from the DTO's own class-validator / class-transformer metadata:
// the DTOs stay the one source of truth (for validation and for the OpenAPI document). A compiled validator only
// ever ACCEPTS: it builds the instance class-transformer would build and passes it when every rule holds, and
// answers null for anything else, which then goes through the full ValidationPipe, so every refusal (unknown
// field, wrong type, range) keeps its exact EINVAL message. A DTO using anything this file does not know
// (@Transform, arrays, groups, `each`, a validator it has no predicate for…) is not compiled at all.
import { getMetadataStorage, ValidationTypes } from 'class-validator';
import type { ValidationMetadata } from 'class-validator/types/metadata/ValidationMetadata';

/** class-transformer's metadata storage (not in its public typings). */
interface TransformerStorage {
  findTransformMetadatas(target: Function, property: string, type: number): unknown[];
  findTypeMetadata(target: Function, property: string): { typeFunction: () => Function; options?: { discriminator?: unknown } } | undefined;
  getExposedMetadatas(target: Function): unknown[];
  getExcludedMetadatas(target: Function): unknown[];
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const transformer = (require('class-transformer/cjs/storage') as { defaultMetadataStorage: TransformerStorage }).defaultMetadataStorage;
/** class-transformer's TransformationType.PLAIN_TO_CLASS */
const PLAIN_TO_CLASS = 0;

type Rule = (value: unknown) => boolean;
type Dto = new () => Record<string, unknown>;

interface Property {
  name: string;
  /** The property's ValidateIf / IsOptional conditions, called as class-validator calls them: one false skips its rules. */
  conditions: Array<(object: object, value: unknown) => boolean>;
  rules: Rule[];
  /** A nested DTO (ValidateNested + @Type). */
  nested: Compiled | null;
}

interface Compiled {
  readonly dto: Dto;
  readonly properties: Map<string, Property>;
}

const isObject = (v: unknown): boolean => v !== null && (typeof v === 'object' || typeof v === 'function') && !Array.isArray(v);

/** The same predicates class-validator applies (its own definitions, or stricter: a stricter one only sends more to the full pipe). */
function ruleOf(m: ValidationMetadata): Rule | null {
  const c = m.constraints ?? [];
  switch (m.name) {
    case 'isInt':
      return (v) => typeof v === 'number' && Number.isInteger(v);
    case 'min':
      return typeof c[0] === 'number' ? (v) => typeof v === 'number' && v >= (c[0] as number) : null;
    case 'max':
      return typeof c[0] === 'number' ? (v) => typeof v === 'number' && v <= (c[0] as number) : null;
    case 'isString':
      return (v) => typeof v === 'string';
    case 'isBoolean':
      return (v) => typeof v === 'boolean';
    case 'maxLength':
      // UTF-16 units ≥ the characters validator.js counts: within the limit here is within it there.
      return typeof c[0] === 'number' ? (v) => typeof v === 'string' && v.length <= (c[0] as number) : null;
    case 'isIn':
      return Array.isArray(c[0]) ? (v) => (c[0] as unknown[]).some((p) => p === v) : null;
    case 'equals':
      return (v) => v === c[0];
    case 'isNotEmpty':
      return (v) => v !== '' && v !== null && v !== undefined;
    case 'isObject':
      return isObject;
    case 'isArray':
      return (v) => Array.isArray(v);
    case 'arrayMaxSize':
      return typeof c[0] === 'number' ? (v) => Array.isArray(v) && v.length <= (c[0] as number) : null;
    case 'matches': {
      if (!(c[0] instanceof RegExp) || c[0].flags.includes('y')) return null;
      const re = new RegExp(c[0].source, c[0].flags.replace('g', ''));
      return (v) => typeof v === 'string' && re.test(v);
    }
    default:
      return null;
  }
}

function plainMetadata(m: ValidationMetadata): boolean {
  return !m.each && !m.always && (m.groups ?? []).length === 0 && m.validateIf === undefined && m.context === undefined;
}

function compileProperty(dto: Dto, name: string, metas: ValidationMetadata[], seen: Set<Function>): Property | null {
  if (transformer.findTransformMetadatas(dto, name, PLAIN_TO_CLASS).length > 0) return null;
  const p: Property = { name, conditions: [], rules: [], nested: null };
  for (const m of metas) {
    if (!plainMetadata(m)) return null;
    if (m.type === ValidationTypes.CONDITIONAL_VALIDATION) {
      const condition: unknown = m.constraints?.[0];
      if (typeof condition !== 'function') return null;
      p.conditions.push(condition as (object: object, value: unknown) => boolean);
    } else if (m.type === ValidationTypes.NESTED_VALIDATION) {
      const type = transformer.findTypeMetadata(dto, name);
      if (!type || type.options?.discriminator) return null;
      const nested = compileDto(type.typeFunction() as Dto, seen);
      if (!nested) return null;
      p.nested = nested;
    } else if (m.type === ValidationTypes.CUSTOM_VALIDATION) {
      const rule = ruleOf(m);
      if (!rule) return null;
      p.rules.push(rule);
    } else return null;
  }
  // A @Type without ValidateNested would build an instance nobody validates: leave that to the full pipe.
  if (!p.nested && transformer.findTypeMetadata(dto, name)) return null;
  return p;
}

const cache = new WeakMap<Function, Compiled | null>();

function compileDto(dto: Dto, seen = new Set<Function>()): Compiled | null {
  if (cache.has(dto)) return cache.get(dto) ?? null;
  if (seen.has(dto)) return null; // a recursive DTO: not compiled
  seen.add(dto);
  let compiled: Compiled | null = null;
  const metas = getMetadataStorage().getTargetValidationMetadatas(dto, '', false, false);
  if (metas.length > 0 && transformer.getExposedMetadatas(dto).length === 0 && transformer.getExcludedMetadatas(dto).length === 0) {
    const byName = new Map<string, ValidationMetadata[]>();
    for (const m of metas) byName.set(m.propertyName, [...(byName.get(m.propertyName) ?? []), m]);
    const properties = new Map<string, Property>();
    for (const [name, list] of byName) {
      const p = compileProperty(dto, name, list, seen);
      if (!p) {
        properties.clear();
        break;
      }
      properties.set(name, p);
    }
    if (properties.size === byName.size) compiled = { dto, properties };
  }
  seen.delete(dto);
  cache.set(dto, compiled);
  return compiled;
}

function conditionsHold(p: Property, object: object, value: unknown): boolean {
  for (const condition of p.conditions) if (!condition(object, value)) return false;
  return true;
}

/** The instance class-transformer would build from `value`, when every rule holds; null otherwise. */
function accept(c: Compiled, value: unknown): Record<string, unknown> | null {
  if (!isObject(value)) return null;
  const plain = value as Record<string, unknown>;
  const out = new c.dto();
  for (const key of Object.keys(plain)) {
    const p = c.properties.get(key);
    if (!p) return null; // unknown field: the full pipe names it
    const v = plain[key];
    if (p.nested && isObject(v)) {
      const inner = accept(p.nested, v);
      if (!inner) return null;
      out[key] = inner;
    } else out[key] = v;
  }
  for (const p of c.properties.values()) {
    const v = out[p.name];
    if (!conditionsHold(p, out, v)) continue;
    if (p.nested && !(v instanceof p.nested.dto)) return null;
    for (const rule of p.rules) if (!rule(v)) return null;
  }
  return out;
}

/** The compiled validator of a body DTO, or null when the DTO uses what only the full pipe knows. */
export function compiledBodyValidator(metatype: unknown): ((value: unknown) => Record<string, unknown> | null) | null {
  if (typeof metatype !== 'function' || metatype === Object || metatype === Array) return null;
  const c = compileDto(metatype as Dto);
  return c ? (value) => accept(c, value) : null;
}
