import type { DataSource } from 'typeorm';
import { LamportClock } from '../clock';
import { createDataSource, WriteLock } from '../db';
import { runInTrace } from '../trace';
import type { JournalFilter } from './journal';
import { Journal } from './journal';
import { readJournal } from './journal-query';
import type { JournalStore } from './journal-store';

/** The same store with its SQLite fast path turned off: every read goes through TypeORM's query builder. */
const throughTypeorm = (store: JournalStore): JournalStore => Object.assign(Object.create(store) as JournalStore, { selectNow: () => null });

async function twoInstances(): Promise<{ ds: DataSource; a: Journal; b: Journal; other: Journal }> {
  const ds = createDataSource({ path: ':memory:' });
  await ds.initialize();
  const lock = new WriteLock();
  const a = new Journal(ds, 'app', new LamportClock(), lock, 'a');
  const b = new Journal(ds, 'app', new LamportClock(), lock, 'b');
  const other = new Journal(ds, 'other', new LamportClock(), lock);
  for (let i = 0; i < 12; i++) {
    const j = [a, b, other][i % 3];
    await runInTrace({ traceId: (i % 2 ? 'c' : 'd').repeat(32), spanId: 'e'.repeat(16), caller: 'vmm' }, () =>
      j.record({ actor: `pid:${i % 4}`, operation: i % 5 === 0 ? 'ioasid.free' : 'ioasid.alloc', object: `ioasid:${i % 3}`, args: { i }, result: { ok: i } }),
    );
  }
  // A row from before the instance column: it belongs to whichever instance reads its app.
  await ds.query(
    `INSERT INTO journal (app, actor, operation, args, trace_id, span_id, logical, wall_ms, duration_ms, instance, input) VALUES ('app', 'pid:9', 'old', '{}', 't', 's', 1, 5, 0.5, NULL, 0)`,
  );
  return { ds, a, b, other };
}

describe('readJournal', () => {
  it('answers the same rows, with the same types, through better-sqlite3 directly as through TypeORM, for every filter', async () => {
    const { ds, a } = await twoInstances();
    try {
      const all = await readJournal(a.store, { limit: 100 }, 'app', 'a');
      const third = all[2];
      const filters: JournalFilter[] = [
        {},
        { limit: 3 },
        { afterSeq: third.seq },
        { traceId: 'c'.repeat(32) },
        { operation: 'ioasid.free' },
        { object: 'ioasid:0' },
        { actor: 'pid:0' },
        { since: third.wallMs, until: third.wallMs + 1_000_000 },
        { instance: 'b' },
        { instance: '*', afterSeq: 2, limit: 4 },
        { instance: '*', operation: 'ioasid.alloc', object: 'ioasid:1', actor: 'pid:1' },
      ];
      for (const f of filters) {
        const direct = await readJournal(a.store, f, 'app', 'a');
        const orm = await readJournal(throughTypeorm(a.store), f, 'app', 'a');
        expect({ f, rows: direct }).toEqual({ f, rows: orm });
        expect(direct.length).toBeGreaterThan(0);
      }
      // The scoping the filters rely on: a's own rows and the old NULL-instance row, never b's or another app's.
      expect(all.map((r) => r.instance)).toEqual(['a', 'a', 'a', 'a', null]);
      expect(all.map((r) => r.operation)).toContain('old');
      expect(typeof all[0].wallMs).toBe('number');
      expect(typeof all[4].durationMs).toBe('number');
      expect(all[4].input).toBe(0);
      expect((await readJournal(a.store, { instance: '*' }, 'app', 'a')).map((r) => r.instance).sort()).toEqual(['a', 'a', 'a', 'a', 'b', 'b', 'b', 'b', null]);
    } finally {
      await ds.destroy();
    }
  });

  it("reads the rows after a seq as a range of the app's (app, seq) index, not by sorting the app's whole history", async () => {
    const { ds, a } = await twoInstances();
    try {
      const seen: string[] = [];
      const store = a.store;
      // What the direct path prepares, asked of SQLite's planner.
      const spy = Object.assign(Object.create(store) as JournalStore, {
        selectNow: <T>(sql: string, params: Record<string, unknown>): T[] | null => {
          seen.push(...(ds.driver as unknown as { databaseConnection: { prepare(s: string): { all(p: unknown): { detail: string }[] } } }).databaseConnection
            .prepare(`EXPLAIN QUERY PLAN ${sql}`)
            .all(params)
            .map((r) => r.detail));
          return store.selectNow<T>(sql, params);
        },
      });
      expect((await readJournal(spy, { afterSeq: 3, limit: 10_000 }, 'app', 'a')).map((r) => r.seq)).toEqual([4, 7, 10, 13]);
      expect(seen).toEqual(['SEARCH j USING INDEX journal_app_seq (app=? AND seq>?)']);
    } finally {
      await ds.destroy();
    }
  });
});
