// Every HTTP request, once answered: one line in the log (debug; warn for a 5xx) and the request counter and
// latency histogram of /metrics, by route template — `/v1/ioasid/:fd/ioasids`, never the raw path, so the
// label set stays bounded (an unknown path is `unmatched`).
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from '../log/logger';
import type { AppMetrics } from '../metrics/metrics';
import { currentTrace, newSpanId } from '../trace';
import type { AuthenticatedRequest } from './auth';

/** The route template a request matched: Nest routes are express routes, static mounts have a base URL. */
export function routeTemplate(req: Request): string {
  const route = (req as Request & { route?: { path?: unknown } }).route;
  if (route && typeof route.path === 'string') return `${req.baseUrl}${route.path}`;
  return req.baseUrl || 'unmatched';
}

/** Who made the request, as the journal names actors: the admin, `pid:N` / `vm:N` (by token), else the calling app. */
function actorOf(req: AuthenticatedRequest, principal: string): string {
  if (req.isAdmin) return 'admin';
  if (req.callerId !== undefined) return `${principal}:${req.callerId}`;
  const caller = req.header('x-caller');
  return caller && /^[a-z-]{1,32}$/.test(caller) ? caller : 'operator';
}

export function httpObserve(log: Logger, metrics: AppMetrics, principal: string) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const t0 = process.hrtime.bigint();
    const trace = currentTrace();
    // The caller's span when it sent one (traceparent), else a span of this request's own.
    const spanId = trace?.spanId ?? newSpanId();
    res.on('finish', () => {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const route = routeTemplate(req);
      metrics.request(req.method, route, res.statusCode, seconds);
      const level = res.statusCode >= 500 ? 'warn' : 'debug';
      if (!log.isLevelEnabled(level)) return;
      log[level](
        {
          traceId: trace?.traceId,
          spanId,
          actor: actorOf(req as AuthenticatedRequest, principal),
          operation: `${req.method} ${route}`,
          status: res.statusCode,
          ms: Math.round(seconds * 1e6) / 1e3,
        },
        'request',
      );
    });
    next();
  };
}
