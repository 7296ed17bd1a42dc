import type { NextFunction, Request, Response } from 'express';
import type { StackPeerKey } from '../auth/stack-peer';
import type { LamportClock } from '../clock';
import { newTraceId, runInTrace, parseTraceparent } from '../trace';

/**
 * Accepts W3C `traceparent` on every request (a new trace when absent or malformed), the caller's
 * name and Lamport clock, and answers with our clock so the caller can order what follows. The caller's
 * clock counts only when `x-lamport-proof` proves the caller is an app of this stack (auth/stack-peer.ts):
 * anyone else could pin it at 2^53 with one request. Even then one message moves it by at most its step bound.
 */
export function traceMiddleware(clock: LamportClock, peers: StackPeerKey | null) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const parsed = parseTraceparent(req.header('traceparent'));
    const caller = req.header('x-caller');
    const lamport = req.header('x-lamport');
    if (lamport !== undefined && peers?.verify('lamport', lamport, req.header('x-lamport-proof'))) clock.observe(Number(lamport));
    const ctx = {
      traceId: parsed?.traceId ?? newTraceId(),
      spanId: parsed?.parentId ?? null,
      caller: caller && /^[a-z-]{1,32}$/.test(caller) ? caller : null,
    };
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
