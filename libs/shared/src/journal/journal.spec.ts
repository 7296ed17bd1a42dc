import { LamportClock } from '../clock';
import { createDataSource, WriteLock } from '../db';
import { KernelError } from '../errno';
import { currentTrace, formatTraceparent, runInTrace } from '../trace';
import { Journal } from './journal';

async function openJournal(): Promise<{ journal: Journal; close: () => Promise<void>; query: (sql: string) => Promise<unknown> }> {
  const ds = createDataSource({ path: ':memory:' });
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
        () => async (em) => {
          await em.query('INSERT INTO thing (id) VALUES (1)');
        },
      ),
    ).rejects.toMatchObject({ errno: 'EBUSY' });
    expect(await query('SELECT COUNT(*) AS n FROM thing')).toEqual([{ n: 0 }]);
    const rows = await journal.events({});
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ operation: 'thing.make', errno: 'EBUSY', result: null, object: 'thing:1' });
    await close();
  });

  it('rolls back the state change when the journal row cannot be written (one transaction)', async () => {
    const { journal, close, query } = await openJournal();
    await query('CREATE TABLE thing (id INTEGER PRIMARY KEY)');
    // A circular structure cannot be serialized: the row insert fails after persist ran.
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    await expect(
      journal.run({ operation: 'thing.make', actor: 'pid:1', args: circular }, () => 1, () => async (em) => {
        await em.query('INSERT INTO thing (id) VALUES (1)');
      }),
    ).rejects.toThrow();
    expect(await query('SELECT COUNT(*) AS n FROM thing')).toEqual([{ n: 0 }]);
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
    const fresh = new Journal((journal as unknown as { ds: never }).ds, 'test-app', new LamportClock(), new WriteLock());
    await fresh.recover();
    expect(fresh.clock.peek()).toBe(42);
    await close();
  });
});
