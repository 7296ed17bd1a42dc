// Where journal rows and the state they commit with are written: one database transaction per operation.
// On better-sqlite3 the write is synchronous (the driver is synchronous; a transaction is a few µs), so a
// domain transaction can append its row and commit without ever yielding; on any other driver it is a
// TypeORM transaction, awaited under the app's write lock.
import type { DataSource, EntitySchema, EntityManager, ObjectLiteral } from 'typeorm';
import type { WriteLock } from './write-lock';
import { JournalEntity, type JournalRow } from './journal.entity';

/**
 * A change to an app table committed in the same transaction as a journal row. Column values are given by
 * entity property name; `where` is an equality match on properties.
 */
export type StateWrite =
  | { entity: EntitySchema<ObjectLiteral>; insert: ObjectLiteral }
  | { entity: EntitySchema<ObjectLiteral>; update: ObjectLiteral; where: ObjectLiteral }
  | { entity: EntitySchema<ObjectLiteral>; delete: ObjectLiteral };

interface RawStatement {
  run(...params: unknown[]): { lastInsertRowid?: number | bigint } | unknown;
  all(...params: unknown[]): unknown[];
}

interface RawDb {
  prepare(sql: string): RawStatement;
  transaction<A, B, R>(fn: (a: A, b: B) => R): (a: A, b: B) => R;
}

type Row = Omit<JournalRow, 'seq'>;

/** Called with the rows of every committed write (metrics count them, the log prints them). */
export type RowsListener = (rows: readonly Row[]) => void;

const JOURNAL_COLUMNS: Array<keyof Row> = [
  'app',
  'actor',
  'operation',
  'object',
  'args',
  'result',
  'errno',
  'traceId',
  'spanId',
  'parentSpanId',
  'caller',
  'logical',
  'wallMs',
  'durationMs',
  'instance',
  'input',
  'request',
];

export class JournalStore {
  /**
   * Told the seq of the last row of every committed write, and its rows (time travel stops the world right after
   * one; a write's rows take consecutive seqs, so its first is lastSeq - rows.length + 1).
   */
  afterWrite: ((lastSeq: number, rows: readonly Pick<JournalRow, 'operation'>[]) => void) | null = null;
  private raw: RawDb | null | undefined;
  private readonly statements = new Map<string, RawStatement>();
  private readonly listeners: RowsListener[] = [];
  /** One better-sqlite3 transaction function for every write (db.transaction builds a wrapper: once, not per call). */
  private writeAll: ((rows: Row[], writes: StateWrite[]) => number) | null = null;

  constructor(
    readonly ds: DataSource,
    private readonly lock: WriteLock,
    /** This app instance: rows of app tables that have an `instance` column are scoped to it (a shared database). */
    readonly instance: string | null = null,
  ) {}

  /** The rows of an app table that belong to this instance (all of them on a table without an `instance` column). */
  find<T extends ObjectLiteral>(entity: EntitySchema<T>, where: Partial<T> = {}, order?: { [K in keyof T]?: 'ASC' | 'DESC' }): Promise<T[]> {
    return this.ds.getRepository<T>(entity).find({ where: this.scoped(entity, where) as never, order: order as never });
  }

  /** Adds this instance to a match on a table that has an `instance` column. */
  private scoped(entity: EntitySchema<ObjectLiteral>, values: ObjectLiteral): ObjectLiteral {
    return this.instance !== null && this.ds.getMetadata(entity).findColumnWithPropertyName('instance') ? { ...values, instance: this.instance } : values;
  }

  /** The same write with this instance in its values and its match (see scoped). */
  private scopedWrite(w: StateWrite): StateWrite {
    if ('insert' in w) return { entity: w.entity, insert: this.scoped(w.entity, w.insert) };
    if ('update' in w) return { entity: w.entity, update: w.update, where: this.scoped(w.entity, w.where) };
    return { entity: w.entity, delete: this.scoped(w.entity, w.delete) };
  }

  /** True when write() can complete synchronously right now (better-sqlite3, and no async transaction open). */
  get syncNow(): boolean {
    return this.rawDb() !== null && this.lock.idle;
  }

  /**
   * Appends `rows` and applies `writes` in one transaction. Synchronous when `syncNow`, else a promise
   * (queued under the write lock). A failure commits nothing and throws (or rejects).
   */
  write(rows: Row[], stateWrites: StateWrite[] = []): void | Promise<void> {
    const writes = stateWrites.length === 0 ? stateWrites : stateWrites.map((w) => this.scopedWrite(w));
    const raw = this.rawDb();
    if (raw && this.lock.idle) {
      const last = this.rawWriteAll(raw)(rows, writes);
      this.written(rows, last);
      return;
    }
    return this.lock.run(async () => {
      const ids = await this.ds.transaction(async (em) => {
        for (const w of writes) await ormWrite(em, w);
        return rows.length ? (await em.getRepository(JournalEntity).insert(rows)).identifiers : [];
      });
      this.written(rows, Number((ids.at(-1) as { seq?: number } | undefined)?.seq ?? 0));
    });
  }

  /**
   * A read on better-sqlite3, synchronously, with named parameters (`:name`), its statement prepared once;
   * null on any other driver (the caller reads through TypeORM).
   */
  selectNow<T>(sql: string, params: Record<string, unknown>): T[] | null {
    if (this.rawDb() === null) return null;
    return this.statement(sql).all(params) as T[];
  }

  /** Hears every committed write, after its transaction committed (never for one that failed). */
  onRows(listener: RowsListener): void {
    this.listeners.push(listener);
  }

  private written(rows: readonly Row[], lastSeq: number): void {
    for (const l of this.listeners) l(rows);
    if (rows.length) this.afterWrite?.(lastSeq, rows);
  }

  /** Writes state outside any journaled operation (recovery bookkeeping), under the same lock. */
  transaction<T>(fn: (em: EntityManager) => Promise<T>): Promise<T> {
    return this.lock.run(() => this.ds.transaction(fn));
  }

  /** The state writes, then the journal rows, in one SQLite transaction: the last row's seq. */
  private rawWriteAll(raw: RawDb): (rows: Row[], writes: StateWrite[]) => number {
    if (this.writeAll) return this.writeAll;
    const insert = this.statement(INSERT_JOURNAL);
    return (this.writeAll = raw.transaction((rows: Row[], writes: StateWrite[]): number => {
      for (const w of writes) this.rawWrite(w);
      let last = 0;
      const values: unknown[] = new Array(JOURNAL_COLUMNS.length);
      for (const r of rows) {
        for (let i = 0; i < JOURNAL_COLUMNS.length; i++) values[i] = r[JOURNAL_COLUMNS[i]] ?? null;
        last = Number((insert.run(...values) as { lastInsertRowid?: number | bigint }).lastInsertRowid ?? 0);
      }
      return last;
    }));
  }

  private rawWrite(w: StateWrite): void {
    const meta = this.ds.getMetadata(w.entity);
    const col = (prop: string): string => {
      const c = meta.findColumnWithPropertyName(prop);
      if (!c) throw new Error(`${meta.tableName} has no column for property ${prop}`);
      return `"${c.databaseName}"`;
    };
    const value = (v: unknown): unknown => (typeof v === 'boolean' ? Number(v) : v);
    if ('insert' in w) {
      const keys = Object.keys(w.insert);
      this.statement(`INSERT INTO "${meta.tableName}" (${keys.map(col).join(', ')}) VALUES (${keys.map(() => '?').join(', ')})`).run(
        ...keys.map((k) => value(w.insert[k])),
      );
    } else if ('update' in w) {
      const sets = Object.keys(w.update);
      const where = Object.keys(w.where);
      this.statement(`UPDATE "${meta.tableName}" SET ${sets.map((k) => `${col(k)} = ?`).join(', ')} WHERE ${where.map((k) => `${col(k)} = ?`).join(' AND ')}`).run(
        ...sets.map((k) => value(w.update[k])),
        ...where.map((k) => value(w.where[k])),
      );
    } else {
      const where = Object.keys(w.delete);
      this.statement(`DELETE FROM "${meta.tableName}" WHERE ${where.map((k) => `${col(k)} = ?`).join(' AND ')}`).run(...where.map((k) => value(w.delete[k])));
    }
  }

  private statement(sql: string): RawStatement {
    let s = this.statements.get(sql);
    if (!s) {
      s = (this.rawDb() as RawDb).prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  /** The better-sqlite3 handle under TypeORM (null on other drivers, or before the DataSource is initialized). */
  private rawDb(): RawDb | null {
    if (this.raw !== undefined) return this.raw;
    if (this.ds.options.type !== 'better-sqlite3') return (this.raw = null);
    const db = (this.ds.driver as unknown as { databaseConnection?: RawDb }).databaseConnection;
    if (!db) return null;
    return (this.raw = db);
  }
}

const column = (prop: keyof Row): string => prop.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
const INSERT_JOURNAL = `INSERT INTO journal (${JOURNAL_COLUMNS.map(column).join(', ')}) VALUES (${JOURNAL_COLUMNS.map(() => '?').join(', ')})`;

async function ormWrite(em: EntityManager, w: StateWrite): Promise<void> {
  const repo = em.getRepository(w.entity);
  if ('insert' in w) await repo.insert(w.insert);
  else if ('update' in w) await repo.update(w.where, w.update);
  else await repo.delete(w.delete);
}
