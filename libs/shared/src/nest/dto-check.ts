// The REST request pipeline's checks of a body and a query, as plain functions (no Nest import): ObjectBodyPipe's
// shape rule, then what the global ValidationPipe does with the route's DTO — class-transformer builds the
// instance, class-validator checks it with the same options, and a refusal is the same EINVAL message. The Nest
// pipes (validation.ts) take their options and message from here; the in-process door (stack/door) runs these
// functions, so a malformed request gets in process the answer REST gives it, and journals nothing either way.
import { plainToInstance } from 'class-transformer';
import { validateSync, type ValidationError } from 'class-validator';
import { KernelError } from '../errno';
import { checkKeys } from '../json-guard';
import { compiledBodyValidator } from './compiled-dto';

export type DtoClass = new () => object;

/** class-validator's options of every route: unknown fields refused, unknown values too. */
export const VALIDATOR_OPTIONS = { whitelist: true, forbidNonWhitelisted: true, forbidUnknownValues: true } as const;
/** class-transformer's: no implicit conversion (a query DTO converts its strings itself, with @Transform). */
export const TRANSFORM_OPTIONS = { enableImplicitConversion: false } as const;

function flatten(errors: ValidationError[], prefix = ''): string[] {
  return errors.flatMap((e) => {
    const path = prefix ? `${prefix}.${e.property}` : e.property;
    const own = Object.values(e.constraints ?? {}).map((m) => (m.startsWith(e.property) ? `${prefix ? `${prefix}.` : ''}${m}` : `${path}: ${m}`));
    return [...own, ...flatten(e.children ?? [], path)];
  });
}

/** The refusal of a request the DTO's rules reject: every broken rule, in class-validator's order. */
export function invalidRequest(errors: ValidationError[]): KernelError {
  return new KernelError('EINVAL', flatten(errors).join('; ') || 'invalid request');
}

/** ObjectBodyPipe's rule: a body is a JSON object, and neither it nor a query names `__proto__` or `constructor`. */
export function checkRequestShape(value: unknown, kind: 'body' | 'query'): void {
  if (kind === 'body' && (value === null || typeof value !== 'object' || Array.isArray(value))) throw new KernelError('EINVAL', 'the request body must be a JSON object');
  checkKeys(value);
}

/** A body the DTO's compiled validator accepts, built as the pipe builds it; null: the full pipe must judge it. */
export function compiledBody(dto: unknown, value: unknown): Record<string, unknown> | null {
  const accept = compiledBodyValidator(dto);
  return accept ? accept(value) : null;
}

/**
 * A body or query as the route's handler gets it over REST: the shape rule, then the DTO instance (a body the
 * compiled validator accepts is built at once, as the pipe does), or the EINVAL the pipe would answer. `value` is
 * parsed JSON (a body) or the query's strings: never a binary value or a sparse array, which only the pipe's
 * other transports carry.
 */
export function checkedRequest<T extends object>(dto: new () => T, value: unknown, kind: 'body' | 'query'): T {
  checkRequestShape(value, kind);
  const built = kind === 'body' ? compiledBody(dto, value) : null;
  if (built) return built as T;
  const entity = plainToInstance(dto, value ?? {}, TRANSFORM_OPTIONS) as T;
  const errors = validateSync(entity, { ...VALIDATOR_OPTIONS, validationError: { target: false } });
  if (errors.length > 0) throw invalidRequest(errors);
  return entity;
}
