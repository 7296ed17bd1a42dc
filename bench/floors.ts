// The floors of the bench contract (issue 13), measured in the same run as the rows they divide:
// hop (a bare node:http keep-alive round trip to a server in another process), insert (one committed
// better-sqlite3 WAL insert), copy4k (Buffer.copy of 4 KiB), mapset / mapsetHeap (Map.set of a small object at
// 2^20 entries: time and heap per entry).
import Database from 'better-sqlite3';
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer, request, Agent } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Floors, time, timeSync, type Timing } from './table';

const PAGE = 4096;
const MAP_ENTRIES = 2 ** 20;

/** The bare server: answers `{}` to any request once its body is read. Run as `node -e` in a child process. */
const BARE_SERVER = `
const http = require('node:http');
const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => { res.setHeader('content-type', 'application/json'); res.end('{}'); });
});
server.keepAliveTimeout = 60000;
server.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: server.address().port }) + '\\n'));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;

/** A bare server in another process (it exits when our end of its stdin closes). */
async function bareServerProcess(): Promise<{ port: number; child: ChildProcess }> {
  const child = spawn(process.execPath, ['-e', BARE_SERVER], { stdio: ['pipe', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (c: Buffer) => {
      out += c.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve((JSON.parse(out.slice(0, nl)) as { port: number }).port);
    });
    child.on('exit', (code) => reject(new Error(`bare server exited with ${code}`)));
  });
  return { port, child };
}

/** One keep-alive node:http POST of a small JSON body; resolves with the body it read. */
function hop(agent: Agent, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/', agent, headers: { 'content-type': 'application/json' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.end('{"msr":"IA32_PASID","value":0}');
  });
}

/** `hop`: a bare node:http keep-alive round trip to a server in another process. */
export async function hopFloor(n: number): Promise<Timing> {
  const { port, child } = await bareServerProcess();
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    if ((await hop(agent, port)) !== '{}') throw new Error('the bare server did not answer {}');
    return await time(n, () => hop(agent, port));
  } finally {
    agent.destroy();
    child.stdin?.end();
  }
}

/** The same bare hop, the server in this process (the old floor; kept as a note beside the other-process one). */
export async function sameProcessHop(n: number): Promise<Timing> {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end('{}'));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    return await time(n, () => hop(agent, (server.address() as { port: number }).port));
  } finally {
    agent.destroy();
    server.close();
  }
}

/** `insert`: one raw better-sqlite3 insert, committed, in a WAL file database (what one journal row costs at least). */
export function insertFloor(n: number): Timing {
  const dir = mkdtempSync(join(tmpdir(), 'ioasid-bench-'));
  const db = new Database(join(dir, 'floor.db'));
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.exec('CREATE TABLE t (seq INTEGER PRIMARY KEY AUTOINCREMENT, op TEXT, args TEXT, wall INTEGER)');
    const insert = db.prepare('INSERT INTO t (op, args, wall) VALUES (?, ?, ?)');
    const t = timeSync(n, (i) => insert.run('noop', `{"i":${i}}`, Date.now()));
    const count = (db.prepare('SELECT count(*) AS c FROM t').get() as { c: number }).c;
    if (count !== n + Math.min(100, n)) throw new Error(`insert floor: ${count} rows committed, expected ${n} + warm-up`);
    return t;
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** n bytes of a recognisable pattern. */
function pattern(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

/**
 * `copy4k`: Buffer.copy of 4 KiB from one page of a buffer to the next, as the data plane copies frame to frame. Two
 * buffers of their own would lie wherever malloc put them, and on AMD EPYC (FSRM) a copy whose destination is 16
 * bytes past a multiple of 4 KiB from its source is 15 times slower: the floor of some processes was 2.4 µs.
 */
export function copy4kFloor(n: number): Timing {
  const pages = Buffer.alloc(2 * PAGE);
  const a = pages.subarray(0, PAGE);
  const b = pages.subarray(PAGE);
  pattern(PAGE, 5).copy(a);
  const t = timeSync(n, () => a.copy(b));
  if (!b.equals(a)) throw new Error('Buffer.copy floor did not copy');
  return t;
}

const gc = (globalThis as { gc?: () => void }).gc;

/** heapUsed after a full collection (node runs the bench with --expose-gc). */
export function heapUsed(): number {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed;
}

/** `mapset` / `mapsetHeap`: Map.set of a small object at 2^20 entries (the xarray analogue), µs and bytes per entry. */
export function mapsetFloor(): { us: number; bytes: number } {
  let map: Map<number, { id: number; state: string }> | null = new Map();
  const heap0 = heapUsed();
  const t0 = process.hrtime.bigint();
  for (let id = 1; id <= MAP_ENTRIES; id++) map.set(id, { id, state: 'allocated' });
  const us = Number(process.hrtime.bigint() - t0) / 1000 / MAP_ENTRIES;
  const bytes = (heapUsed() - heap0) / MAP_ENTRIES;
  if (map.size !== MAP_ENTRIES) throw new Error(`floor map holds ${map.size} entries, expected ${MAP_ENTRIES}`);
  map = null;
  heapUsed();
  return { us, bytes };
}

export async function measureFloors(): Promise<{ floors: Floors; note: string }> {
  if (!gc) throw new Error('run the bench with node --expose-gc (npm run bench does)');
  const h = await hopFloor(3000);
  const same = await sameProcessHop(2000);
  const ins = insertFloor(5000);
  const copy = copy4kFloor(400_000);
  const m = mapsetFloor();
  const floors: Floors = { hop: h.p50Us, insert: ins.perOpUs, copy4k: copy.perOpUs, mapset: m.us, mapsetHeap: m.bytes };
  return { floors, note: `hop p50 ${h.p50Us.toFixed(0)} µs, mean ${h.perOpUs.toFixed(0)} µs (server in this process: p50 ${same.p50Us.toFixed(0)} µs)` };
}
