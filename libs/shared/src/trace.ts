import { AsyncLocalStorage } from 'node:async_hooks';
import { randomFillSync } from 'node:crypto';
import type { InputMark } from './replay/input';
import type { SeededStream } from './replay/seeded';

// W3C Trace Context (https://www.w3.org/TR/trace-context/): traceparent = version-traceid-parentid-flags.
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

export interface TraceContext {
  traceId: string;
  /** The span whose children we are creating: the caller's span for a fresh request, our own inside an operation. */
  spanId: string | null;
  /** The app that called us, from `x-caller`, for drawing arrows whose caller row is not at hand. */
  caller: string | null;
  /** Inside a journaled operation: who issues it and what it is (for log lines; never sent to another app). */
  actor?: string;
  operation?: string;
  /** Set on a request that entered the stack from outside: the first journal row begun under it is that input. */
  input?: InputMark;
}

/** Where trace and span ids come from: random, or a seeded stream in deterministic mode (DESIGN §9). */
let ids: SeededStream | null = null;

/** Draws trace and span ids from `stream` (null: random again). One per process: an app, or the in-process stack. */
export function useSeededIds(stream: SeededStream | null): void {
  ids = stream;
}

/**
 * Random bytes for ids, drawn from a pool filled 4 KiB at a time (as Node's randomUUID caches its entropy): one
 * randomFillSync per 256 span ids instead of a randomBytes call, and a fresh Buffer, per id. Ids are not secrets.
 */
const entropy = Buffer.allocUnsafe(4096);
let drawn = entropy.length;

function randomHex(bytes: number): string {
  if (drawn + bytes > entropy.length) {
    randomFillSync(entropy);
    drawn = 0;
  }
  const hex = entropy.toString('hex', drawn, drawn + bytes);
  drawn += bytes;
  return hex;
}

export function newTraceId(): string {
  return ids ? ids.hex(16) : randomHex(16);
}

export function newSpanId(): string {
  return ids ? ids.hex(8) : randomHex(8);
}

/** Parses a traceparent header; an absent or malformed one yields null (the spec says: start a new trace). */
export function parseTraceparent(header: string | undefined | null): { traceId: string; parentId: string } | null {
  if (!header) return null;
  const m = TRACEPARENT.exec(header.trim().toLowerCase());
  if (!m || m[1] === 'ff' || m[2] === ZERO_TRACE || m[3] === ZERO_SPAN) return null;
  return { traceId: m[2], parentId: m[3] };
}

export function formatTraceparent(traceId: string, spanId: string): string {
  return `00-${traceId}-${spanId}-01`;
}

const storage = new AsyncLocalStorage<TraceContext>();

export function currentTrace(): TraceContext | undefined {
  return storage.getStore();
}

export function runInTrace<T>(ctx: TraceContext, fn: () => T): T {
  return storage.run(ctx, fn);
}

/** Enters a trace for the rest of this async flow (used by the request middleware). */
export function enterTrace(ctx: TraceContext): void {
  storage.enterWith(ctx);
}

/** Headers an outbound call carries: the current span becomes the callee's parent. */
export function outboundTraceHeaders(app: string, lamport: number): Record<string, string> {
  const ctx = storage.getStore();
  const traceId = ctx?.traceId ?? newTraceId();
  const spanId = ctx?.spanId ?? newSpanId();
  return {
    traceparent: formatTraceparent(traceId, spanId),
    'x-caller': app,
    'x-lamport': String(lamport),
  };
}
