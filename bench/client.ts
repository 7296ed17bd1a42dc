// The bench's own HTTP client for driving the apps from outside (the guest console, the audit plane): one
// keep-alive undici Pool per app, so the driver's cost stays small and the same before and after a change to the
// product's transport. What the product sends between its apps goes through its own RestClient.
import { Pool } from 'undici';

export class BenchClient {
  private readonly pool: Pool;

  constructor(readonly url: string) {
    this.pool = new Pool(url, { connections: 32, pipelining: 1, keepAliveTimeout: 60_000 });
  }

  async call<T>(method: string, path: string, opts: { body?: unknown; token?: string; traceparent?: string } = {}): Promise<T> {
    const headers: Record<string, string> = {};
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    if (opts.traceparent) headers.traceparent = opts.traceparent;
    if (opts.body !== undefined) headers['content-type'] = 'application/json';
    const res = await this.pool.request({ method: method as 'GET', path, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
    const text = await res.body.text();
    if (res.statusCode >= 300) throw new Error(`${method} ${this.url}${path}: ${res.statusCode} ${text}`);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
