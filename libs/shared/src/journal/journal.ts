import type { DataSource, EntityManager } from 'typeorm';
import { LamportClock } from '../clock';
import { KernelError } from '../errno';
import { currentTrace, newSpanId, newTraceId, runInTrace, type TraceContext } from '../trace';
import { JournalEntity, type JournalRow } from './journal.entity';

/** State an operation commits in the same transaction as its journal row. */
export type PersistFn = (em: EntityManager) => Promise<void>;

/** What an operation says about itself before it runs. */
export interface OperationMeta<T> {
  operation: string;
  actor: string;
  args?: unknown;
  /** The object it acts on ("ioasid:5"), or a function of its result (ALLOC names the id it made). */
  object?: string | ((result: T) => string | null);
  /** What to record as the result; defaults to the returned value. */
  recordResult?: (result: T) => unknown;
}

/** A row that a journaled operation produced besides its own (e.g. each fd closed by a process exit). */
export interface ChildRow {
  operation: string;
  actor: string;
  object?: string | null;
  args?: unknown;
  result?: unknown;
  errno?: string | null;
}

interface RawDb {
  prepare(sql: string): { run(params: object): unknown };
  transaction<A>(fn: (a: A) => void): (a: A) => void;
}

export interface JournalFilter {
  traceId?: string;
  operation?: string;
  object?: string;
  actor?: string;
  since?: number;
  until?: number;
  limit?: number;
  afterSeq?: number;
}

export interface JournalEvent extends Omit<JournalRow, 'args' | 'result'> {
  args: unknown;
  result: unknown;
}

/**
 * The append-only journal of one app. `run` wraps one operation: it opens a span (outbound calls made
 * inside carry it as their parent), runs the operation, then commits the state it persists (`persist`,
 * given the result, says what — or null for nothing) and its journal row in one transaction under the
 * app's write lock. A failure is journaled with its errno in
 * a transaction of its own and changes nothing else.
 */
export class Journal {
  private readonly lock: { run<T>(fn: () => Promise<T>): Promise<T> };

  constructor(
    private readonly ds: DataSource,
    readonly app: string,
    readonly clock: LamportClock,
    lock: { run<T>(fn: () => Promise<T>): Promise<T> },
  ) {
    this.lock = lock;
  }

  /** Restores the Lamport clock past every row already written (restart). */
  async recover(): Promise<void> {
    const rows: Array<{ m: number | null }> = await this.ds.query('SELECT MAX(logical) AS m FROM journal');
    this.clock.observe(rows[0]?.m ?? 0);
  }

  async run<T>(
    meta: OperationMeta<T>,
    fn: (scope: { addChild(row: ChildRow): void }) => Promise<T> | T,
    persist?: (result: T) => PersistFn | null,
  ): Promise<T> {
    const outer = currentTrace();
    const traceId = outer?.traceId ?? newTraceId();
    const spanId = newSpanId();
    const ctx: TraceContext = { traceId, spanId, caller: this.app };
    const started = Date.now();
    const t0 = process.hrtime.bigint();
    const children: ChildRow[] = [];
    const base = {
      app: this.app,
      actor: meta.actor,
      operation: meta.operation,
      traceId,
      spanId,
      parentSpanId: outer?.spanId ?? null,
      caller: outer?.caller ?? null,
      wallMs: started,
    };
    let result: T;
    try {
      result = await runInTrace(ctx, () => fn({ addChild: (row) => children.push(row) }));
    } catch (err) {
      const errno = err instanceof KernelError ? err.errno : 'EIO';
      await this.append(
        { ...base, object: typeof meta.object === 'string' ? meta.object : null, args: meta.args, errno },
        t0,
        children,
      );
      throw err;
    }
    const object = typeof meta.object === 'function' ? meta.object(result) : (meta.object ?? null);
    const recorded = meta.recordResult ? meta.recordResult(result) : result;
    await this.append({ ...base, object, args: meta.args, result: recorded, errno: null }, t0, children, persist?.(result) ?? undefined);
    return result;
  }

  /** Journals an event that is not a call (a hardware fault, a lifeline drop) under the current trace. */
  async record(row: ChildRow): Promise<void> {
    const outer = currentTrace();
    const started = Date.now();
    await this.append(
      {
        app: this.app,
        actor: row.actor,
        operation: row.operation,
        traceId: outer?.traceId ?? newTraceId(),
        spanId: newSpanId(),
        parentSpanId: outer?.spanId ?? null,
        caller: outer?.caller ?? null,
        wallMs: started,
        object: row.object ?? null,
        args: row.args,
        result: row.result,
        errno: row.errno ?? null,
      },
      process.hrtime.bigint(),
      [],
    );
  }

  private async append(
    row: Omit<JournalRow, 'seq' | 'logical' | 'durationMs' | 'args' | 'result'> & { args: unknown; result?: unknown },
    t0: bigint,
    children: ChildRow[],
    persist?: PersistFn,
  ): Promise<void> {
    const durationMs = Number(process.hrtime.bigint() - t0) / 1e6;
    const rows = (): JournalRow[] => [
      {
        ...row,
        seq: 0,
        args: JSON.stringify(row.args ?? {}),
        result: row.result === undefined ? null : JSON.stringify(row.result),
        logical: this.clock.tick(),
        durationMs,
      },
      ...children.map((child) => ({
        seq: 0,
        app: this.app,
        actor: child.actor,
        operation: child.operation,
        object: child.object ?? null,
        args: JSON.stringify(child.args ?? {}),
        result: child.result === undefined ? null : JSON.stringify(child.result),
        errno: child.errno ?? null,
        traceId: row.traceId,
        spanId: newSpanId(),
        parentSpanId: row.spanId,
        caller: this.app,
        logical: this.clock.tick(),
        wallMs: row.wallMs,
        durationMs: 0,
      })),
    ];
    const raw = this.rawSqlite();
    await this.lock.run(async () => {
      if (!persist && raw) {
        // Fast path (most rows): no other state to commit, so one synchronous better-sqlite3 transaction.
        // Safe on the connection TypeORM shares: every writer holds this lock, so no TypeORM transaction is open.
        raw.transaction((list: JournalRow[]) => {
          for (const r of list) raw.insert.run(r);
        })(rows());
        return;
      }
      await this.ds.transaction(async (em) => {
        if (persist) await persist(em);
        const list = rows();
        await em.getRepository(JournalEntity).insert(list.map(({ seq: _seq, ...r }) => r));
      });
    });
  }

  private raw: { insert: { run(r: JournalRow): unknown }; transaction<A>(fn: (a: A) => void): (a: A) => void } | null | undefined;

  /** The better-sqlite3 handle under TypeORM, with a prepared journal insert (null on other drivers). */
  private rawSqlite(): typeof this.raw {
    if (this.raw !== undefined) return this.raw;
    const db = this.ds.options.type === 'better-sqlite3' ? (this.ds.driver as unknown as { databaseConnection?: RawDb }).databaseConnection : undefined;
    this.raw = db
      ? {
          insert: db.prepare(`INSERT INTO journal (app, actor, operation, object, args, result, errno, trace_id, span_id, parent_span_id, caller, logical, wall_ms, duration_ms)
            VALUES (@app, @actor, @operation, @object, @args, @result, @errno, @traceId, @spanId, @parentSpanId, @caller, @logical, @wallMs, @durationMs)`),
          transaction: (fn) => db.transaction(fn),
        }
      : null;
    return this.raw;
  }

  /** Writes state outside any journaled operation (recovery bookkeeping), under the same lock. */
  transaction<T>(fn: (em: EntityManager) => Promise<T>): Promise<T> {
    return this.lock.run(() => this.ds.transaction(fn));
  }

  async events(filter: JournalFilter): Promise<JournalEvent[]> {
    const qb = this.ds.getRepository(JournalEntity).createQueryBuilder('j');
    if (filter.traceId) qb.andWhere('j.trace_id = :traceId', { traceId: filter.traceId });
    if (filter.operation) qb.andWhere('j.operation = :operation', { operation: filter.operation });
    if (filter.object) qb.andWhere('j.object = :object', { object: filter.object });
    if (filter.actor) qb.andWhere('j.actor = :actor', { actor: filter.actor });
    if (filter.since !== undefined) qb.andWhere('j.wall_ms >= :since', { since: filter.since });
    if (filter.until !== undefined) qb.andWhere('j.wall_ms <= :until', { until: filter.until });
    if (filter.afterSeq !== undefined) qb.andWhere('j.seq > :afterSeq', { afterSeq: filter.afterSeq });
    qb.orderBy('j.seq', 'ASC').limit(Math.min(filter.limit ?? 1000, 10000));
    const rows = await qb.getMany();
    return rows.map((r) => ({
      ...r,
      args: JSON.parse(r.args) as unknown,
      result: r.result === null ? null : (JSON.parse(r.result) as unknown),
    }));
  }
}
