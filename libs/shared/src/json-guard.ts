// What every request body passes before anything descends into it (DESIGN §5: bad input is an errno, never a
// 500), on both doors: the REST body parser runs checkJsonDepth on the raw bytes before JSON.parse and checkKeys
// on the result; the in-process crossing (stack/crossing.ts) applies the same two rules while it copies.
import { KernelError } from './errno';

/**
 * Deepest nesting of objects and arrays a request may carry. The deepest body of the contract is 3 levels
 * (`{descriptors:[{…}]}`); 3,000 levels overflowed class-transformer's recursion (a 500) and a million blocked
 * the event loop for over a second.
 */
export const MAX_BODY_DEPTH = 32;

/** Keys JavaScript gives a meaning of their own: no DTO declares them, so they are unknown fields everywhere. */
export const RESERVED_KEYS: readonly string[] = ['__proto__', 'constructor', 'prototype'];
const RESERVED = new Set(RESERVED_KEYS);

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;

function tooDeep(max: number): KernelError {
  return new KernelError('EINVAL', `the request body nests objects or arrays deeper than ${max} levels`);
}

/**
 * One pass over the raw bytes of a JSON text (UTF-8: every structural character is one ASCII byte, and no byte
 * of a multi-byte sequence is below 0x80): EINVAL as soon as the nesting exceeds `max`. Brackets inside strings
 * do not count. Says nothing about whether the text is valid JSON; the parser after it does.
 */
export function checkJsonDepth(body: Uint8Array, max = MAX_BODY_DEPTH): void {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) {
      inString = true;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > max) throw tooDeep(max);
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      depth--;
    }
  }
}

/** EINVAL for a reserved key anywhere in a parsed value (with the message an unknown field gets). */
export function checkKeys(value: unknown, max = MAX_BODY_DEPTH): void {
  visit(value, 0, max, '');
}

function visit(value: unknown, depth: number, max: number, path: string): void {
  if (value === null || typeof value !== 'object' || Buffer.isBuffer(value)) return;
  if (depth >= max) throw tooDeep(max);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) visit(value[i], depth + 1, max, `${path}[${i}]`);
    return;
  }
  for (const key of Object.keys(value)) {
    if (RESERVED.has(key)) throw new KernelError('EINVAL', `property ${path}${key} should not exist`);
    visit((value as Record<string, unknown>)[key], depth + 1, max, `${path}${key}.`);
  }
}
