import Database from 'better-sqlite3';
import { createServer, request, Agent } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { time, type Timing } from './table';

/** A bare node:http server answering `{}` to any request: the least an HTTP hop can cost. */
async function bareServer(): Promise<{ port: number; close: () => void }> {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as { port: number }).port, close: () => server.close() };
}

/** The bare server through a keep-alive node:http client. */
export async function httpHopFloor(n: number): Promise<Timing> {
  const server = await bareServer();
  const port = server.port;
  const agent = new Agent({ keepAlive: true });
  const hop = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/', agent, headers: { 'content-type': 'application/json' } }, (res) => {
        res.resume();
        res.on('end', () => resolve());
      });
      req.on('error', reject);
      req.end('{"msr":"IA32_PASID","value":0}');
    });
  const t = await time(n, hop);
  agent.destroy();
  server.close();
  return t;
}

/** The same bare server reached with built-in fetch (what the project's REST clients use). */
export async function fetchHopFloor(n: number): Promise<Timing> {
  const server = await bareServer();
  const url = `http://127.0.0.1:${server.port}/`;
  const t = await time(n, async () => {
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"msr":"IA32_PASID","value":0}' });
    await res.text();
  });
  server.close();
  return t;
}

/** One raw better-sqlite3 insert, committed, in a WAL file database (what one journal row costs at least). */
export async function sqliteInsertFloor(n: number): Promise<Timing> {
  const dir = mkdtempSync(join(tmpdir(), 'ioasid-bench-'));
  const db = new Database(join(dir, 'floor.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec('CREATE TABLE t (seq INTEGER PRIMARY KEY AUTOINCREMENT, op TEXT, args TEXT, wall INTEGER)');
  const insert = db.prepare('INSERT INTO t (op, args, wall) VALUES (?, ?, ?)');
  const t = await time(n, (i) => insert.run('noop', `{"i":${i}}`, Date.now()));
  db.close();
  rmSync(dir, { recursive: true, force: true });
  return t;
}
