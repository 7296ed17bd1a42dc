import { EntitySchema } from 'typeorm';
import { LamportClock } from '../clock';
import { createDataSource, WriteLock } from '../db';
import { KernelError } from '../errno';
import { currentTrace, formatTraceparent, runInTrace } from '../trace';
import { Journal } from './journal';

const Thing = new EntitySchema<{ id: number }>({ name: 'Thing', tableName: 'thing', columns: { id: { type: 'integer', primary: true } } });

async function openJournal(): Promise<{ journal: Journal; close: () => Promise<void>; query: (sql: string) => Promise<unknown> }> {
  const ds = createDataSource({ path: ':memory:', entities: [Thing] });
  await ds.initialize();
  const journal = new Journal(ds, 'test-app', new LamportClock(), new WriteLock());
  return { journal, close: () => ds.destroy(), query: (sql) => ds.query(sql) };
}

describe('Journal', () => {
  it('appends one row per operation with seq, actor, args, result, trace ids and logical time', async () => {
    const { journal, close } = await openJournal();
    const trace = { traceId: 'a'.repeat(32), spanId: 'b'.repeat(16), caller: 'vmm' };
    const r = await runInTrace(trace, () =>
      journal.run({ operation: 'ioasid.alloc', actor: 'pid:3', args: { fd: 3 }, object: (x: { ioasid: number }) => `ioasid:${x.ioasid}` }, () => ({ ioasid: 7 })),
    );
    expect(r).toEqual({ ioasid: 7 });
    const [row] = await journal.events({});
    expect(row).toMatchObject({
      seq: 1,
      app: 'test-app',
      actor: 'pid:3',
      operation: 'ioasid.alloc',
      object: 'ioasid:7',
      args: { fd: 3 },
      result: { ioasid: 7 },
      errno: null,
      traceId: 'a'.repeat(32),
      parentSpanId: 'b'.repeat(16),
      caller: 'vmm',
      logical: 1,
    });
    expect(row.spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(row.spanId).not.toBe(trace.spanId);
    await close();
  });

  it('journals a failure with its errno, commits nothing the operation would have persisted, and rethrows', async () => {
    const { journal, close, query } = await openJournal();
    await query('CREATE TABLE thing (id INTEGER PRIMARY KEY)');
    await expect(
      journal.run(
        { operation: 'thing.make', actor: 'pid:1', object: 'thing:1' },
        () => {
          throw new KernelError('EBUSY', 'thing 1 has users');
        },
        () => [{ entity: Thing, insert: { id: 1 } }],
      ),
    ).rejects.toMatchObject({ errno: 'EBUSY' });
    expect(await query('SELECT COUNT(*) AS n FROM thing')).toEqual([{ n: 0 }]);
    const rows = await journal.events({});
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ operation: 'thing.make', errno: 'EBUSY', result: null, object: 'thing:1' });
    await close();
  });

  it('commits no state when its row cannot be written: the write of the state and the row is one transaction (EIO)', async () => {
    const { journal, close, query } = await openJournal();
    await query('CREATE TABLE thing (id INTEGER PRIMARY KEY)');
    // The row insert fails after the state write ran in the same transaction: a NOT NULL column gets null.
    const broken = journal.rows.bind(journal);
    journal.rows = (op, outcome) => broken(op, outcome).map((r) => ({ ...r, actor: null as unknown as string }));
    await expect(journal.run({ operation: 'thing.make', actor: 'pid:1' }, () => 1, () => [{ entity: Thing, insert: { id: 1 } }])).rejects.toMatchObject({ errno: 'EIO' });
    journal.rows = broken;
    expect(await query('SELECT COUNT(*) AS n FROM thing')).toEqual([{ n: 0 }]);
    expect(await journal.events({})).toEqual([]);
    // With a row that can be written, the same operation commits both.
    await journal.run({ operation: 'thing.make', actor: 'pid:1' }, () => 1, () => [{ entity: Thing, insert: { id: 1 } }]);
    expect(await query('SELECT COUNT(*) AS n FROM thing')).toEqual([{ n: 1 }]);
    expect((await journal.events({})).map((r) => r.operation)).toEqual(['thing.make']);
    await close();
  });

  it('is append-only at the database level: UPDATE and DELETE are refused', async () => {
    const { journal, close, query } = await openJournal();
    await journal.run({ operation: 'x', actor: 'a' }, () => 1);
    await expect(query(`UPDATE journal SET errno = 'EPERM' WHERE seq = 1`)).rejects.toThrow(/append-only/);
    await expect(query('DELETE FROM journal WHERE seq = 1')).rejects.toThrow(/append-only/);
    await expect(query('DELETE FROM journal')).rejects.toThrow(/append-only/);
    const rows = await journal.events({});
    expect(rows).toHaveLength(1);
    expect(rows[0].errno).toBeNull();
    await close();
  });

  it('opens a span per operation: calls made inside carry it as their parent', async () => {
    const { journal, close } = await openJournal();
    let inner: string | null = null;
    await journal.run({ operation: 'outer', actor: 'a' }, () => {
      inner = currentTrace()?.spanId ?? null;
      return formatTraceparent(currentTrace()!.traceId, inner!);
    });
    const [row] = await journal.events({});
    expect(row.spanId).toBe(inner);
    await close();
  });

  it('writes child rows under the operation span, and filters by trace, operation, object and time', async () => {
    const { journal, close } = await openJournal();
    const t1 = { traceId: '1'.repeat(32), spanId: null, caller: null };
    await runInTrace(t1, () =>
      journal.run({ operation: 'process.exit', actor: 'pid:4', object: 'process:4' }, (scope) => {
        scope.addChild({ operation: 'event.fd-close', actor: 'pid:4', object: 'fd:4/3' });
        return null;
      }),
    );
    await journal.run({ operation: 'other', actor: 'pid:5' }, () => null);
    const all = await journal.events({});
    expect(all.map((r) => r.operation)).toEqual(['process.exit', 'event.fd-close', 'other']);
    expect(all[1].parentSpanId).toBe(all[0].spanId);
    expect((await journal.events({ traceId: t1.traceId })).map((r) => r.operation)).toEqual(['process.exit', 'event.fd-close']);
    expect((await journal.events({ object: 'fd:4/3' })).map((r) => r.seq)).toEqual([2]);
    expect((await journal.events({ operation: 'other' })).map((r) => r.actor)).toEqual(['pid:5']);
    expect(await journal.events({ since: Date.now() + 60_000 })).toEqual([]);
    expect(await journal.events({ limit: 1 })).toHaveLength(1);
    await close();
  });

  it('keeps logical time increasing past a peer clock it observed, and recovers it on restart', async () => {
    const { journal, close } = await openJournal();
    journal.clock.observe(41);
    await journal.run({ operation: 'x', actor: 'a' }, () => 1);
    const [row] = await journal.events({});
    expect(row.logical).toBe(42);
    const fresh = new Journal(journal.store.ds, 'test-app', new LamportClock(), new WriteLock());
    await fresh.recover();
    expect(fresh.clock.peek()).toBe(42);
    await close();
  });

  it('recovers past the highest logical time on disk even when a pinned clock left 2^53 there (it restarted at 1)', async () => {
    const { journal, close } = await openJournal();
    // The row a clock pinned at 2^53 - 1 wrote next (the journal is append-only: written as it was then).
    const [pinned] = journal.rows(journal.begin('x', 'a'), { object: null, args: {}, errno: null });
    await journal.store.write([{ ...pinned, logical: 2 ** 53 }]);
    const fresh = new Journal(journal.store.ds, 'test-app', new LamportClock(), new WriteLock());
    await fresh.recover();
    await fresh.run({ operation: 'after-restart', actor: 'a' }, () => 1);
    const rows = await fresh.events({});
    expect(rows.at(-1)?.logical).toBeGreaterThanOrEqual(Number.MAX_SAFE_INTEGER);
    await close();
  });
});
