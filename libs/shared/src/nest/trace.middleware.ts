import type { NextFunction, Request, Response } from 'express';
import type { StackPeerKey } from '../auth/stack-peer';
import type { LamportClock } from '../clock';
import { type InputMark, type PrincipalOf, STACK_APPS } from '../replay/input';
import { newTraceId, runInTrace, parseTraceparent, type TraceContext } from '../trace';

/** How an app names the requests that enter the stack through it (DESIGN §9 inputs). */
export interface InputSource {
  app: string;
  /** A guest's VM. */
  vm?: number;
  principalOf: PrincipalOf;
}

/** The operator's header on a request it recorded itself (a background request in its own stream): not marked again. */
export const OPERATOR_RECORDED = 'x-input-recorded';

/**
 * The input mark of a request from outside the stack (no `x-caller` of a stack app): what replay re-issues —
 * method, path, body, and whose token it carried. The first journal row begun under it takes it.
 */
export function inputMark(req: Request, source: InputSource, caller: string | null): InputMark | undefined {
  if ((caller && STACK_APPS.includes(caller)) || req.header(OPERATOR_RECORDED)) return undefined;
  const auth = req.header('authorization');
  const token = auth ? (/^Bearer\s+(\S+)$/i.exec(auth)?.[1] ?? null) : null;
  const request = { kind: 'http' as const, app: source.app, ...(source.vm !== undefined ? { vm: source.vm } : {}), method: req.method, path: req.originalUrl, body: req.body ?? null, principal: source.principalOf(token) };
  return { request, taken: false };
}

/**
 * Accepts W3C `traceparent` on every request (a new trace when absent or malformed), the caller's
 * name and Lamport clock, and answers with our clock so the caller can order what follows. The caller's
 * clock counts only when `x-lamport-proof` proves the caller is an app of this stack (auth/stack-peer.ts):
 * anyone else could pin it at 2^53 with one request. Even then one message moves it by at most its step bound.
 */
export function traceMiddleware(clock: LamportClock, peers: StackPeerKey | null, inputs?: () => InputSource) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const parsed = parseTraceparent(req.header('traceparent'));
    const caller = req.header('x-caller');
    const lamport = req.header('x-lamport');
    // With a stack secret (AUDIT_TOKEN) only a proven app of this stack moves our clock; in an open lab (no secret,
    // no audit plane to protect) any caller's may, bounded by the clock's step limit.
    if (lamport !== undefined && (peers === null || peers.verify('lamport', lamport, req.header('x-lamport-proof')))) clock.observe(Number(lamport));
    const ctx: TraceContext = {
      traceId: parsed?.traceId ?? newTraceId(),
      spanId: parsed?.parentId ?? null,
      caller: caller && /^[a-z-]{1,32}$/.test(caller) ? caller : null,
    };
    const mark = inputs ? inputMark(req, inputs(), caller ?? null) : undefined;
    if (mark) ctx.input = mark;
    res.setHeader('x-lamport', String(clock.peek()));
    const end = res.end.bind(res) as (...args: unknown[]) => Response;
    res.end = ((...args: unknown[]) => {
      if (!res.headersSent) res.setHeader('x-lamport', String(clock.peek()));
      return end(...args);
    }) as Response['end'];
    // The handler runs inside next(): every await after it keeps this trace (AsyncLocalStorage).
    runInTrace(ctx, () => next());
  };
}
