// One route of the in-process door (DESIGN §8): a REST path pattern and what its controller does with it, so a
// request recorded over REST (method, path, body, token) can be issued to the in-process stack, and back. The
// controllers stay the source of truth: door.spec.ts checks every route of the committed OpenAPI documents
// has its row here. A route names the DTOs its controller validates its body and query with; the door checks them
// as the global pipes do (dto-check.ts), on the route's first read of them: after its bearer rule, as REST's
// guard runs before its pipes.
import { KernelError } from '@app/shared/errno';
import { checkedRequest, type DtoClass } from '@app/shared/nest/dto-check';

export interface RouteCall {
  params: Record<string, string>;
  query: Record<string, string>;
  body: Record<string, unknown>;
  token: string | null;
}

export interface Route<C> {
  method: string;
  path: string;
  /** 201 for a POST that answers a body, 204 for a call that answers none (as the controllers declare). */
  status: number;
  run: (core: C, call: RouteCall) => Promise<unknown> | unknown;
  /** The DTOs of the controller's @Body() and @Query() (none: the handler takes none, and the door passes it raw). */
  dto: RouteDtos;
}

export interface RouteDtos {
  body?: DtoClass;
  query?: DtoClass;
}

export const route = <C>(method: string, path: string, status: number, run: Route<C>['run'], dto: RouteDtos = {}): Route<C> => ({ method, path, status, run, dto });

/**
 * The call a route runs with: its body and query checked against the route's DTOs when the route first reads
 * them (the EINVAL of a bad one thrown there), as the instances the REST handler would get.
 */
export function checkedCall(dto: RouteDtos, raw: RouteCall): RouteCall {
  let body: Record<string, unknown> | undefined;
  let query: Record<string, string> | undefined;
  return {
    params: raw.params,
    token: raw.token,
    get body(): Record<string, unknown> {
      body ??= dto.body ? (checkedRequest(dto.body, raw.body, 'body') as Record<string, unknown>) : raw.body;
      return body;
    },
    get query(): Record<string, string> {
      query ??= dto.query ? (checkedRequest(dto.query, raw.query, 'query') as Record<string, string>) : raw.query;
      return query;
    },
  };
}

/** A `:param` of the path as the IntParamPipe reads it (EINVAL unless a non-negative integer). */
export function intParam(call: RouteCall, name: string): number {
  const v = call.params[name];
  if (!/^\d{1,15}$/.test(v ?? '')) throw new KernelError('EINVAL', `path parameter ${name} must be a non-negative integer`);
  return Number(v);
}

/** A numeric query parameter (the query DTOs convert them). */
export function intQuery(call: RouteCall, name: string): number | undefined {
  const v = call.query[name];
  return v === undefined ? undefined : Number(v);
}

/** Finds the route of `method path` and its parameters. */
export function match<C>(routes: Route<C>[], method: string, path: string): { route: Route<C>; params: Record<string, string>; query: Record<string, string> } | null {
  const [pathname, search = ''] = path.split('?');
  const parts = pathname.split('/').filter(Boolean);
  for (const r of routes) {
    if (r.method !== method) continue;
    const want = r.path.split('/').filter(Boolean);
    if (want.length !== parts.length) continue;
    const params: Record<string, string> = {};
    if (want.every((w, i) => (w.startsWith(':') ? ((params[w.slice(1)] = decodeURIComponent(parts[i])), true) : w === parts[i]))) {
      return { route: r, params, query: Object.fromEntries(new URLSearchParams(search)) };
    }
  }
  return null;
}
