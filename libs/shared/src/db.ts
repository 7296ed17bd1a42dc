import { types as pgTypes } from 'pg';
import { DataSource, type DataSourceOptions, type EntitySchema, type MixedList, type QueryRunner } from 'typeorm';
import { CreateJournal1764000000000 } from './journal/journal.migration';
import { JournalInstance1764000000010 } from './journal/journal-instance.migration';
import { AddJournalInput1764000009000 } from './journal/journal-input.migration';
import { JournalAppSeq1764000009100 } from './journal/journal-app-seq.migration';
import { JournalEntity } from './journal/journal.entity';
import { WAL_AUTOCHECKPOINT_FRAMES, WalCheckpointer, type WalWriter } from './journal/wal-checkpointer';

export interface DatabaseOptions {
  /** A file path, or ':memory:' (SQLite); ignored when `url` is given. */
  path: string;
  /** `postgres://user@host:port/db`: run on PostgreSQL instead (DESIGN §12). */
  url?: string | null;
  // eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
  entities?: EntitySchema[];
  // eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
  migrations?: MixedList<Function>;
}

/** True when a migration runs on PostgreSQL (migrations keep one branch per driver; SQLite is the default). */
export const isPostgres = (q: QueryRunner): boolean => q.connection.options.type === 'postgres';

/**
 * The database of one app: SQLite (WAL, a busy timeout) or PostgreSQL by `url`, with the same entities and
 * migrations, run at start — never `synchronize` (DESIGN §6, §12).
 */
export function dataSourceOptions(opts: DatabaseOptions): DataSourceOptions {
  const entities = [JournalEntity, ...(opts.entities ?? [])];
  // eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
  const migrations = [CreateJournal1764000000000, JournalInstance1764000000010, AddJournalInput1764000009000, JournalAppSeq1764000009100, ...((opts.migrations as unknown[] | undefined) ?? [])] as MixedList<Function>;
  if (opts.url) {
    // int8 (wall_ms, logical, COUNT(*)) as a JS number, as SQLite answers: every value here is below 2^53.
    pgTypes.setTypeParser(pgTypes.builtins.INT8, Number);
    // Migrations run in openDataSource, under an advisory lock: several apps may start on one database at once.
    return { type: 'postgres', url: opts.url, entities, migrations, migrationsRun: false, synchronize: false, logging: false, poolSize: 4, applicationName: 'ioasid-lab' };
  }
  return {
    type: 'better-sqlite3',
    database: opts.path,
    enableWAL: opts.path !== ':memory:',
    timeout: 5000,
    prepareDatabase: (db: { pragma(s: string): unknown }) => {
      db.pragma('synchronous = NORMAL');
      // Until openDataSource starts its checkpointer thread (wal-checkpointer.ts), and whenever it is not running.
      db.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_FRAMES}`);
      db.pragma('foreign_keys = ON');
    },
    entities,
    migrations,
    migrationsRun: true,
    synchronize: false,
    logging: false,
  };
}

export function createDataSource(opts: DatabaseOptions): DataSource {
  return new DataSource(dataSourceOptions(opts));
}

/** Any 64-bit key, the same in every app: the lock that serializes migrations on a shared PostgreSQL database. */
const MIGRATION_LOCK = 7_100_771_042;

/**
 * Opens a DataSource and runs its pending migrations (on PostgreSQL, one app at a time, under an advisory lock).
 * A SQLite file gets its WAL checkpoints in a worker thread, stopped when the DataSource is destroyed.
 */
export async function openDataSource(options: DataSourceOptions): Promise<DataSource> {
  const ds = await new DataSource(options).initialize();
  if (options.type === 'better-sqlite3' && options.database !== ':memory:') checkpointInWorker(ds, String(options.database));
  if (options.type !== 'postgres') return ds;
  const lock = ds.createQueryRunner();
  try {
    await lock.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    await ds.runMigrations({ transaction: 'each' });
  } finally {
    await lock.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => undefined);
    await lock.release();
  }
  return ds;
}

function checkpointInWorker(ds: DataSource, path: string): void {
  const writer = (ds.driver as unknown as { databaseConnection?: WalWriter }).databaseConnection;
  if (!writer) return;
  const checkpointer = WalCheckpointer.start(path, writer);
  const destroy = ds.destroy.bind(ds);
  // TypeORM's own destroy (Nest's TypeOrmModule calls it at shutdown), the worker's connection closed first.
  ds.destroy = async (): Promise<void> => {
    await checkpointer.stop();
    await destroy();
  };
}

export { WriteLock } from './journal/write-lock';
