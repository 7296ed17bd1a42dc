import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { WAL_AUTOCHECKPOINT_FRAMES, WalCheckpointer } from './wal-checkpointer';

const PAGE = 4096;

/** A WAL database whose writer never checkpoints by itself, with ~1 MiB of rows written. */
function writer(dir: string): Database.Database {
  const db = new Database(join(dir, 'app.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('wal_autocheckpoint = 0');
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)');
  const insert = db.prepare('INSERT INTO t (v) VALUES (?)');
  for (let i = 0; i < 256; i++) insert.run(Buffer.alloc(PAGE, i));
  return db;
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!check()) throw new Error(`timed out waiting for ${what}`);
}

describe('WalCheckpointer: WAL checkpoints in a worker thread', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'wal-checkpointer-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('copies the WAL into the database file while the writer never checkpoints, and hands it back on stop', async () => {
    const db = writer(dir);
    const file = join(dir, 'app.db');
    // Nothing checkpointed yet: the rows are in the WAL only.
    expect(statSync(file).size).toBeLessThan(16 * PAGE);
    const c = WalCheckpointer.start(file, db, 20);
    expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(0);
    await until(() => c.stats.checkpoints >= 2, 'two checkpoints');
    expect(statSync(file).size).toBeGreaterThan(256 * PAGE);
    expect(c.stats.lastError).toBeNull();
    // The writer keeps writing beside it, and reads what it wrote.
    db.prepare('INSERT INTO t (v) VALUES (?)').run(Buffer.alloc(8, 1));
    expect(db.prepare('SELECT COUNT(*) AS n FROM t').get()).toEqual({ n: 257 });
    await c.stop();
    expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(WAL_AUTOCHECKPOINT_FRAMES);
    db.close();
  });

  it('starts the WAL over while the writer never stops: past the restart threshold the writer checkpoints the rest', async () => {
    const db = writer(dir);
    const wal = join(dir, 'app.db-wal');
    const c = WalCheckpointer.start(join(dir, 'app.db'), db, 20, 64);
    expect(db.pragma('journal_size_limit', { simple: true })).toBe(64 * PAGE);
    const insert = db.prepare('INSERT INTO t (v) VALUES (?)');
    // 48 MiB of rows, committed on every turn of the event loop: the worker's checkpoint alone never copies every
    // frame (this loop appends while it copies), so without the writer's own the WAL grew past 200 MiB here.
    const rows = (48 * 1024 * 1024) / PAGE;
    for (let i = 0; i < rows; i++) {
      insert.run(Buffer.alloc(PAGE, i));
      if (i % 8 === 7) await new Promise((r) => setImmediate(r));
    }
    expect(c.stats.lastError).toBeNull();
    expect(c.stats.restarts).toBeGreaterThan(0);
    expect(db.prepare('SELECT COUNT(*) AS n FROM t').get()).toEqual({ n: 256 + rows });
    // With it, the WAL was cut back at each restart: 3–4 MiB were left (every row is in the database file).
    expect(statSync(wal).size).toBeLessThan(16 * 1024 * 1024);
    await c.stop();
    db.close();
  });

  it('leaves the restart to a later report while the writer has a transaction open', async () => {
    // 256 pages in the WAL, past a threshold of 64: every report asks for the writer's checkpoint.
    const db = writer(dir);
    db.exec('BEGIN IMMEDIATE');
    db.prepare('INSERT INTO t (v) VALUES (?)').run(Buffer.alloc(8, 2));
    const c = WalCheckpointer.start(join(dir, 'app.db'), db, 20, 64);
    await until(() => c.stats.checkpoints >= 3, 'three checkpoints');
    expect(c.stats).toMatchObject({ restarts: 0, lastError: null });
    db.exec('COMMIT');
    await until(() => c.stats.restarts >= 1, 'the restart after the commit');
    expect(c.stats.lastError).toBeNull();
    expect(db.prepare('SELECT COUNT(*) AS n FROM t').get()).toEqual({ n: 257 });
    await c.stop();
    db.close();
  });

  it('a worker that cannot open the file reports why and gives the writer its automatic checkpoint back', async () => {
    const db = writer(dir);
    const c = WalCheckpointer.start(join(dir, 'no-such-dir', 'app.db'), db, 20);
    await until(() => c.stats.lastError !== null && db.pragma('wal_autocheckpoint', { simple: true }) === WAL_AUTOCHECKPOINT_FRAMES, 'the worker to fail');
    expect(c.stats.checkpoints).toBe(0);
    expect(c.stats.lastError).toMatch(/directory does not exist|unable to open/i);
    db.close();
  });

  it('refuses an in-memory database (it has no WAL) and leaves the writer as it was', () => {
    const db = new Database(':memory:');
    expect(() => WalCheckpointer.start(':memory:', db)).toThrow(/no WAL/);
    expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(1000);
    db.close();
  });
});
