import { Pool } from 'undici';
import type { StackPeerKey } from '../auth/stack-peer';
import type { LamportClock } from '../clock';
import { isErrno, KernelError, type ProblemBody } from '../errno';
import { outboundTraceHeaders } from '../trace';
import { REST_CONNECT_TIMEOUT_MS, REST_DEFAULT_TIMEOUT_MS, REST_KEEP_ALIVE_MS } from './http.constants';

export interface RestClientOptions {
  baseUrl: string;
  /** The calling app's name, sent as `x-caller` so the callee's journal knows who asked. */
  app: string;
  clock?: LamportClock;
  /** This stack's peer key: the callee trusts our `x-lamport` only with its proof (auth/stack-peer.ts). */
  peerKey?: StackPeerKey | null;
  token?: string;
  /** How long the peer may take to send its headers, and then between body chunks (undici's own timers). */
  timeoutMs?: number;
}

type Query = Record<string, string | number | boolean | undefined>;

/**
 * One keep-alive undici Pool per peer origin, shared by every client of this process that calls it (a client per
 * token or per federated call reuses the same sockets). Idle sockets do not hold the process open (undici unrefs them).
 */
const pools = new Map<string, Pool>();

function poolFor(origin: string): Pool {
  let pool = pools.get(origin);
  if (!pool) {
    pool = new Pool(origin, { keepAliveTimeout: REST_KEEP_ALIVE_MS, connect: { timeout: REST_CONNECT_TIMEOUT_MS } });
    pools.set(origin, pool);
  }
  return pool;
}

/** Closes every peer pool (shutdown, tests); the next request opens a new one. */
export async function closeRestPools(): Promise<void> {
  const all = [...pools.values()];
  pools.clear();
  await Promise.all(all.map((p) => p.close()));
}

/** undici's timeout errors: the peer did not connect, answer or keep sending in time. */
const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/** A transport failure as the KernelError the caller sees: ETIMEDOUT (504) for a timeout, EIO (502) otherwise. */
export function transportError(method: string, target: string, err: unknown): KernelError {
  const code = (err as { code?: unknown } | null)?.code;
  const message = `${method} ${target}: ${err instanceof Error ? err.message : String(err)}`;
  return typeof code === 'string' && TIMEOUT_CODES.has(code) ? new KernelError('ETIMEDOUT', message) : new KernelError('EIO', message, 502);
}

/**
 * The one outbound HTTP path of the project (an undici Pool per peer): it propagates `traceparent` and the
 * Lamport clock (with its proof), and turns a problem body back into the KernelError the peer raised.
 */
export class RestClient {
  private readonly origin: string;

  constructor(readonly opts: RestClientOptions) {
    this.origin = new URL(opts.baseUrl).origin;
  }

  withToken(token: string): RestClient {
    return new RestClient({ ...this.opts, token });
  }

  get baseUrl(): string {
    return this.opts.baseUrl;
  }

  url(path: string, query?: Query): string {
    return this.target(path, query).toString();
  }

  private target(path: string, query?: Query): URL {
    const u = new URL(path, this.opts.baseUrl);
    if (query) for (const k in query) if (query[k] !== undefined) u.searchParams.set(k, String(query[k]));
    return u;
  }

  headers(): Record<string, string> {
    const h: Record<string, string> = outboundTraceHeaders(this.opts.app, this.opts.clock?.peek() ?? 0);
    if (this.opts.peerKey) h['x-lamport-proof'] = this.opts.peerKey.sign('lamport', h['x-lamport']);
    if (this.opts.token) h.authorization = `Bearer ${this.opts.token}`;
    return h;
  }

  async request<T>(method: string, path: string, body?: unknown, query?: Query): Promise<T> {
    const headers = this.headers();
    if (body !== undefined) headers['content-type'] = 'application/json';
    const u = this.target(path, query);
    const timeout = this.opts.timeoutMs ?? REST_DEFAULT_TIMEOUT_MS;
    let status: number;
    let text: string;
    let lamport: number;
    try {
      const res = await poolFor(this.origin).request({
        method: method as 'GET',
        path: u.pathname + u.search,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        headersTimeout: timeout,
        bodyTimeout: timeout,
      });
      status = res.statusCode;
      const header = res.headers['x-lamport'];
      lamport = Number(Array.isArray(header) ? header[0] : header);
      text = await res.body.text();
    } catch (err) {
      throw transportError(method, `${this.opts.baseUrl}${path}`, err);
    }
    // The callee is the peer this app was configured to call; its clock still moves ours by a bounded step.
    if (this.opts.clock && Number.isSafeInteger(lamport)) this.opts.clock.observe(lamport);
    if (status < 200 || status >= 300) {
      let problem: Partial<ProblemBody> = {};
      try {
        problem = JSON.parse(text) as Partial<ProblemBody>;
      } catch {
        /* not a problem body: keep the status */
      }
      const errno = isErrno(problem.errno) ? problem.errno : 'EIO';
      throw new KernelError(errno, problem.message ?? `${method} ${path}: HTTP ${status}`, status);
    }
    return (text ? JSON.parse(text) : undefined) as T;
  }

  get<T>(path: string, query?: Query): Promise<T> {
    return this.request<T>('GET', path, undefined, query);
  }

  post<T>(path: string, body: unknown = {}): Promise<T> {
    return this.request<T>('POST', path, body);
  }

  put<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PUT', path, body);
  }

  delete<T>(path: string): Promise<T> {
    return this.request<T>('DELETE', path);
  }
}
