// What a call between two apps of the in-process stack carries, as the REST transport does (libs/shared/http/
// rest-client.ts and nest/trace.middleware.ts): the caller's trace and span (the callee's rows hang under it, the
// callee sees the caller's app name), both Lamport clocks, and values by copy, never by reference. A failure
// that is not a KernelError reaches the caller as the problem filter would answer it: EIO, 500.
import type { LamportClock } from '@app/shared/clock';
import { KernelError } from '@app/shared/errno';
import { checkKeys, MAX_BODY_DEPTH } from '@app/shared/json-guard';
import type { EventSink, Lifeline, LifelineHandlers } from '@app/shared/lifeline/event-sink';
import type { InputMark } from '@app/shared/replay/input';
import { currentTrace, newSpanId, newTraceId, runInTrace } from '@app/shared/trace';

export interface Side {
  /** The app's name, as `x-caller` carries it. */
  app: string;
  clock: LamportClock;
}

/**
 * A deep copy of what crossed (plain data, as JSON would carry it): Buffers stay Buffers. What the REST door's
 * body parser refuses is refused here too, with the same errno: nesting deeper than MAX_BODY_DEPTH and the
 * reserved keys (`__proto__`, `constructor`), both EINVAL.
 */
export function copy<T>(value: T): T {
  checkKeys(value, MAX_BODY_DEPTH);
  return clone(value);
}

function clone<T>(value: T): T {
  if (value === null || typeof value !== 'object') return value;
  if (Buffer.isBuffer(value)) return Buffer.from(value) as T;
  if (Array.isArray(value)) return value.map((v: unknown) => clone(v)) as T;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = clone(v);
  return out as T;
}

/**
 * Runs `fn` (the callee's side of the call) as if it had arrived over REST from `from`. `input` marks a request
 * from outside the stack (the operator's door), as the REST middleware does: a peer's call never carries one.
 */
export async function cross<T>(from: Side, to: Side, fn: () => Promise<T> | T, input?: InputMark): Promise<T> {
  const outer = currentTrace();
  to.clock.observe(from.clock.peek());
  try {
    const r = await runInTrace({ traceId: outer?.traceId ?? newTraceId(), spanId: outer?.spanId ?? newSpanId(), caller: from.app, ...(input ? { input } : {}) }, fn);
    return copy(r);
  } catch (err) {
    if (err instanceof KernelError) throw new KernelError(err.errno, err.message, err.status);
    throw Object.assign(new KernelError('EIO', 'internal error', 500), { cause: err });
  } finally {
    from.clock.observe(to.clock.peek());
  }
}

/**
 * Events pushed on a lifeline reach the holder after the pushing call has returned, in order, as the bytes of
 * an event stream would: never inside the pusher's own call.
 */
export function later(fn: () => void): void {
  setImmediate(fn);
}

/**
 * A lifeline across the in-process door: `attach` registers the sink with the serving app (as the REST route
 * does when the stream opens), `drop` is what the server does when the stream closes. Events and the server's
 * end reach the holder later (`later`), and nothing after our own close().
 */
export function lifeline(opts: LifelineHandlers, attach: (sink: EventSink) => Promise<void>, drop: (sink: EventSink) => void): Lifeline {
  let closed = false;
  const sink: EventSink = {
    send: (event, data) => later(() => !closed && opts.onEvent?.({ event, data: copy(data) })),
    end: () => later(() => !closed && opts.onEnd?.('stream ended')),
  };
  const opened = attach(sink);
  opened.catch((err: unknown) => later(() => opts.onEnd?.((err as Error).message)));
  return {
    opened,
    close: () => {
      if (closed) return;
      closed = true;
      drop(sink);
    },
  };
}
