import { DataSource, type EntitySchema, type MixedList } from 'typeorm';
import { CreateJournal1764000000000 } from './journal/journal.migration';
import { AddJournalInput1764000009000 } from './journal/journal-input.migration';
import { JournalEntity } from './journal/journal.entity';

export interface DatabaseOptions {
  /** A file path, or ':memory:'. */
  path: string;
  // eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
  entities?: EntitySchema[];
  // eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
  migrations?: MixedList<Function>;
}

/**
 * One SQLite database per app: WAL (readers never block the writer), a busy timeout, and migrations
 * run at start — never `synchronize` (DESIGN §6).
 */
export function createDataSource(opts: DatabaseOptions): DataSource {
  return new DataSource({
    type: 'better-sqlite3',
    database: opts.path,
    enableWAL: opts.path !== ':memory:',
    timeout: 5000,
    prepareDatabase: (db: { pragma(s: string): unknown }) => {
      db.pragma('synchronous = NORMAL');
      db.pragma('foreign_keys = ON');
    },
    entities: [JournalEntity, ...(opts.entities ?? [])],
    migrations: [CreateJournal1764000000000, AddJournalInput1764000009000, ...((opts.migrations as unknown[] | undefined) ?? [])] as MixedList<
      // eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
      Function
    >,
    migrationsRun: true,
    synchronize: false,
    logging: false,
  });
}

export { WriteLock } from './journal/write-lock';
