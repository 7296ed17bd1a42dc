import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { StackPeerKey } from '../auth/stack-peer';
import { LamportClock } from '../clock';
import { ERRNO, KernelError } from '../errno';
import { closeRestPools, RestClient } from './rest-client';

interface Peer {
  url: string;
  server: Server;
  /** TCP connections the server accepted. */
  connections: () => number;
  seen: IncomingMessage[];
}

async function peer(handle: (req: IncomingMessage, res: ServerResponse, body: string) => void): Promise<Peer> {
  const seen: IncomingMessage[] = [];
  let connections = 0;
  const server = createServer((req, res) => {
    seen.push(req);
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => handle(req, res, body));
  });
  server.on('connection', () => connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, connections: () => connections, seen };
}

const json = (res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void => {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(value));
};

async function rejection(p: Promise<unknown>): Promise<KernelError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  if (!(err instanceof KernelError)) throw new Error(`expected a KernelError, got ${String(err)}`);
  return err;
}

describe('RestClient (undici Pool per peer)', () => {
  const peers: Peer[] = [];
  const open = async (handle: Parameters<typeof peer>[0]): Promise<Peer> => {
    const p = await peer(handle);
    peers.push(p);
    return p;
  };
  afterEach(async () => {
    await closeRestPools();
    for (const p of peers.splice(0)) {
      p.server.closeAllConnections();
      p.server.close();
    }
  });

  it('keeps its sockets alive across calls (no connection per call), and a client per token shares them', async () => {
    const p = await open((req, res, body) => json(res, 200, { method: req.method, url: req.url, body: body ? JSON.parse(body) : null }));
    const rest = new RestClient({ baseUrl: p.url, app: 'vmm' });
    expect(await rest.post('/v1/x', { a: 1 })).toEqual({ method: 'POST', url: '/v1/x', body: { a: 1 } });
    expect(await rest.get('/v1/y', { n: 2, skip: undefined, ok: true })).toEqual({ method: 'GET', url: '/v1/y?n=2&ok=true', body: null });
    // undici may open a second socket while the first one's first exchange settles; from then on none is opened.
    const warm = p.connections();
    const calls = 10;
    for (let i = 0; i < calls; i++) await (i % 2 ? rest.withToken('t').delete('/v1/z') : rest.post('/v1/x', { i }));
    expect(p.seen).toHaveLength(2 + calls);
    expect(p.connections()).toBe(warm);
    expect(warm).toBeLessThan(calls);
    expect(p.seen[3].headers.authorization).toBe('Bearer t');
    expect(p.seen[2].headers.authorization).toBeUndefined();
  });

  it('sends traceparent, x-caller and the Lamport clock with its proof; the answer moves the clock', async () => {
    const p = await open((_req, res) => json(res, 200, {}, { 'x-lamport': '40' }));
    const clock = new LamportClock(7);
    const key = StackPeerKey.fromAuditToken('stack-secret') as StackPeerKey;
    await new RestClient({ baseUrl: p.url, app: 'guest', clock, peerKey: key }).post('/v1/a');
    const h = p.seen[0].headers;
    expect(h.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(h['x-caller']).toBe('guest');
    expect(h['x-lamport']).toBe('7');
    expect(key.verify('lamport', '7', h['x-lamport-proof'] as string)).toBe(true);
    expect(clock.peek()).toBe(40);
    // Without a peer key no proof is sent.
    await new RestClient({ baseUrl: p.url, app: 'guest', clock }).get('/v1/b');
    expect(p.seen[1].headers['x-lamport']).toBe('40');
    expect(p.seen[1].headers['x-lamport-proof']).toBeUndefined();
  });

  it("a problem body comes back as the peer's errno and status; anything else as EIO with the status", async () => {
    const p = await open((req, res) => {
      if (req.url === '/problem') json(res, ERRNO.EBUSY.status, { errno: 'EBUSY', code: ERRNO.EBUSY.code, message: 'device busy', traceId: 'x' });
      else if (req.url === '/bogus') json(res, 400, { errno: 'ENOTANERRNO', message: 'odd' });
      else {
        res.writeHead(503);
        res.end('down');
      }
    });
    const rest = new RestClient({ baseUrl: p.url, app: 'vmm' });
    expect(await rejection(rest.post('/problem'))).toMatchObject({ errno: 'EBUSY', status: ERRNO.EBUSY.status, message: 'device busy' });
    expect(await rejection(rest.get('/bogus'))).toMatchObject({ errno: 'EIO', status: 400, message: 'odd' });
    expect(await rejection(rest.get('/text'))).toMatchObject({ errno: 'EIO', status: 503 });
  });

  it('a peer that sends no headers in time is ETIMEDOUT (504); one that stalls mid-body too; the socket is not reused', async () => {
    const p = await open((req, res) => {
      if (req.url === '/stall-body') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"a":');
      } // '/silent': never answers
    });
    const rest = new RestClient({ baseUrl: p.url, app: 'vmm', timeoutMs: 50 });
    expect(await rejection(rest.get('/silent'))).toMatchObject({ errno: 'ETIMEDOUT', code: ERRNO.ETIMEDOUT.code, status: ERRNO.ETIMEDOUT.status });
    expect(await rejection(rest.get('/stall-body'))).toMatchObject({ errno: 'ETIMEDOUT', status: 504 });
    expect(p.connections()).toBe(2);
  });

  it('a peer that is not there is EIO (502), and the message names the call', async () => {
    const p = await open(() => undefined);
    const url = p.url;
    p.server.close();
    await new Promise((r) => p.server.once('close', r));
    const err = await rejection(new RestClient({ baseUrl: url, app: 'vmm' }).post('/v1/gone'));
    expect(err).toMatchObject({ errno: 'EIO', status: 502 });
    expect(err.message).toContain(`POST ${url}/v1/gone`);
  });
});
