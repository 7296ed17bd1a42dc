import { createServer, type Server, type ServerResponse } from 'node:http';
import type { JournalEvent } from '../journal/journal';
import { federate } from './federation';

const row = (app: string, seq: number): JournalEvent => ({ app, seq, operation: 'x', actor: 'a', object: null, args: {}, result: null, errno: null, traceId: 't', spanId: 's', parentSpanId: null, caller: null, logical: seq, wallMs: seq, durationMs: 0 });

/** A peer that answers `rows` at once, or holds every answer until release(). */
async function peer(rows: JournalEvent[], hold = false): Promise<{ url: string; server: Server; asked: Array<{ auth?: string; query: URLSearchParams }>; release: () => void }> {
  const asked: Array<{ auth?: string; query: URLSearchParams }> = [];
  const held: ServerResponse[] = [];
  const server = createServer((req, res) => {
    asked.push({ auth: req.headers.authorization, query: new URL(req.url ?? '/', 'http://x').searchParams });
    if (hold) held.push(res);
    else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(rows));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const release = (): void => {
    for (const res of held) res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(rows));
  };
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, server, asked, release };
}

describe('audit federation', () => {
  it('merges the peers’ rows, sends them the audit token, one hop less and half the deadline', async () => {
    const a = await peer([row('vmm', 1), row('vmm', 2)]);
    try {
      const r = await federate([row('host-kernel', 1)], [a.url], { trace: 'abc' }, 3, { app: 'host-kernel', token: 'audit-token-e2e', timeoutMs: 800 });
      expect(r.events.map((e) => `${e.app}#${e.seq}`)).toEqual(['host-kernel#1', 'vmm#1', 'vmm#2']);
      expect(r.missing).toEqual([]);
      expect(a.asked).toHaveLength(1);
      expect(a.asked[0].auth).toBe('Bearer audit-token-e2e');
      expect(Object.fromEntries(a.asked[0].query)).toMatchObject({ trace: 'abc', federate: 'true', depth: '2', timeoutMs: '400' });
    } finally {
      a.server.close();
    }
  });

  it('a peer that does not answer by its deadline is left out and named; the answer does not wait for it', async () => {
    const slow = await peer([row('guest', 1)], true);
    const fast = await peer([row('vmm', 1)]);
    try {
      // The deadline must leave the fast peer time to answer on a loaded machine; the slow one never does.
      const r = await federate([], [slow.url, fast.url], {}, 1, { app: 'vmm', token: null, timeoutMs: 1500 });
      // The slow peer still holds its answer: ours came without it.
      expect(slow.asked).toHaveLength(1);
      expect(r.events.map((e) => e.app)).toEqual(['vmm']);
      expect(r.missing).toEqual([slow.url]);
      expect(fast.asked[0].auth).toBeUndefined();
    } finally {
      slow.release();
      slow.server.close();
      fast.server.close();
    }
  });

  it('asks nobody at depth 0', async () => {
    const a = await peer([row('vmm', 1)]);
    try {
      expect(await federate([row('guest', 1)], [a.url], {}, 0, { app: 'guest', token: 't', timeoutMs: 100 })).toEqual({ events: [row('guest', 1)], missing: [] });
      expect(a.asked).toEqual([]);
    } finally {
      a.server.close();
    }
  });
});
