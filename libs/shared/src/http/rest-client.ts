import type { StackPeerKey } from '../auth/stack-peer';
import type { LamportClock } from '../clock';
import { isErrno, KernelError, type ProblemBody } from '../errno';
import { outboundTraceHeaders } from '../trace';

export interface RestClientOptions {
  baseUrl: string;
  /** The calling app's name, sent as `x-caller` so the callee's journal knows who asked. */
  app: string;
  clock?: LamportClock;
  /** This stack's peer key: the callee trusts our `x-lamport` only with its proof (auth/stack-peer.ts). */
  peerKey?: StackPeerKey | null;
  token?: string;
  timeoutMs?: number;
}

type Query = Record<string, string | number | boolean | undefined>;

/**
 * The one outbound HTTP path of the project (built-in fetch): it propagates `traceparent` and the
 * Lamport clock, and turns a problem body back into the KernelError the peer raised.
 */
export class RestClient {
  constructor(readonly opts: RestClientOptions) {}

  withToken(token: string): RestClient {
    return new RestClient({ ...this.opts, token });
  }

  get baseUrl(): string {
    return this.opts.baseUrl;
  }

  url(path: string, query?: Query): string {
    const u = new URL(path, this.opts.baseUrl);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) u.searchParams.set(k, String(v));
    return u.toString();
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
    let res: Response;
    try {
      res = await fetch(this.url(path, query), {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.opts.timeoutMs ?? 30_000),
      });
    } catch (err) {
      throw new KernelError('EIO', `${method} ${this.opts.baseUrl}${path}: ${(err as Error).message}`, 502);
    }
    // The callee is the peer this app was configured to call; its clock still moves ours by a bounded step.
    const lamport = Number(res.headers.get('x-lamport'));
    if (this.opts.clock && Number.isSafeInteger(lamport)) this.opts.clock.observe(lamport);
    const text = await res.text();
    if (!res.ok) {
      let problem: Partial<ProblemBody> = {};
      try {
        problem = JSON.parse(text) as Partial<ProblemBody>;
      } catch {
        /* not a problem body: keep the status */
      }
      const errno = isErrno(problem.errno) ? problem.errno : 'EIO';
      throw new KernelError(errno, problem.message ?? `${method} ${path}: HTTP ${res.status}`, res.status);
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
