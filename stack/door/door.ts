// The operator's door into the in-process stack: a REST-shaped request (app, method, path, body, bearer token)
// issued to the real app cores through the route tables, answered as REST would answer it (status and body,
// or the problem body of a KernelError). A request through this door is an input (DESIGN §9), marked exactly
// as the REST middleware marks it: the receiving app's principal for the token, never the token.
import { KernelError } from '@app/shared/errno';
import type { HttpInput, InputMark } from '@app/shared/replay/input';
import { GUEST_ROUTES } from './guest.routes';
import { HOST_ROUTES } from './host.routes';
import { checkedCall, match, type Route } from './route';
import { VMM_ROUTES } from './vmm.routes';

export type StackApp = 'host-kernel' | 'vmm' | 'guest';

export interface StackRequest {
  app: StackApp;
  /** The guest's VM (app `guest`). */
  vm?: number;
  method: string;
  /** Path with its query string. */
  path: string;
  body?: unknown;
  token?: string | null;
  /** W3C traceparent the request carries (a fresh trace otherwise). */
  traceparent?: string | null;
  /** The operator already recorded this request in its own stream (a background request): not an input row. */
  recorded?: boolean;
}

export interface StackResponse {
  status: number;
  body: unknown;
}

export const ROUTES = { 'host-kernel': HOST_ROUTES, vmm: VMM_ROUTES, guest: GUEST_ROUTES } as const;

/** The input mark of a request, as the middleware of the receiving app would make it. */
export function markOf(req: StackRequest, principal: string): InputMark | undefined {
  if (req.recorded) return undefined;
  const request: HttpInput = { kind: 'http', app: req.app, ...(req.vm !== undefined ? { vm: req.vm } : {}), method: req.method, path: req.path, body: req.body ?? null, principal };
  return { request, taken: false };
}

/** Runs the route of `req` on `core`, answering as the REST app would. */
export async function serve<C>(routes: Route<C>[], core: C, req: StackRequest): Promise<StackResponse> {
  try {
    const m = match(routes, req.method, req.path);
    if (!m) throw new KernelError('ENOENT', `no route ${req.method} ${req.path.split('?')[0]} on ${req.app}`);
    const body = (req.body ?? {}) as Record<string, unknown>;
    const out = await m.route.run(core, checkedCall(m.route.dto, { params: m.params, query: m.query, body, token: req.token ?? null }));
    return { status: m.route.status, body: out ?? undefined };
  } catch (err) {
    const e = err instanceof KernelError ? err : new KernelError('EIO', 'internal error', 500);
    return { status: e.status, body: { errno: e.errno, code: e.code, message: e.message } };
  }
}
