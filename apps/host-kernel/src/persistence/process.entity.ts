import { isPostgres } from '@app/shared/db';
import { EntitySchema, type MigrationInterface, type QueryRunner } from 'typeorm';

/** A host process as the database keeps it: enough to audit it and to never reuse its pid. */
export interface ProcessRow {
  /** The host kernel instance (INSTANCE) whose process this is: several may share one PostgreSQL database. */
  instance?: string;
  pid: number;
  comm: string;
  state: 'running' | 'exited';
  createdMs: number;
  exitedMs: number | null;
  exitReason: string | null;
}

export const ProcessEntity = new EntitySchema<ProcessRow>({
  name: 'ProcessRow',
  tableName: 'process',
  columns: {
    instance: { type: 'text', primary: true },
    pid: { type: 'integer', primary: true },
    comm: { type: 'text' },
    state: { type: 'text' },
    createdMs: { type: 'integer', name: 'created_ms' },
    exitedMs: { type: 'integer', name: 'exited_ms', nullable: true },
    exitReason: { type: 'text', name: 'exit_reason', nullable: true },
  },
});

export class CreateProcess1764000000001 implements MigrationInterface {
  name = 'CreateProcess1764000000001';

  async up(q: QueryRunner): Promise<void> {
    // Epoch milliseconds need 64 bits on PostgreSQL (SQLite's INTEGER is 64-bit already).
    const ms = isPostgres(q) ? 'BIGINT' : 'INTEGER';
    await q.query(`CREATE TABLE process (
      pid INTEGER PRIMARY KEY,
      comm TEXT NOT NULL,
      state TEXT NOT NULL CHECK (state IN ('running', 'exited')),
      created_ms ${ms} NOT NULL,
      exited_ms ${ms},
      exit_reason TEXT
    )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE process`);
  }
}

/**
 * Process rows belong to a host kernel instance: pids are per kernel, so the key is (instance, pid) and two host
 * kernels can share a database (DESIGN §12). Rows from before belong to the default instance, `host-kernel`.
 */
export class ProcessInstance1764000000011 implements MigrationInterface {
  name = 'ProcessInstance1764000000011';

  async up(q: QueryRunner): Promise<void> {
    if (isPostgres(q)) {
      await q.query(`ALTER TABLE process ADD COLUMN instance TEXT NOT NULL DEFAULT 'host-kernel'`);
      await q.query(`ALTER TABLE process DROP CONSTRAINT process_pkey`);
      await q.query(`ALTER TABLE process ADD PRIMARY KEY (instance, pid)`);
      return;
    }
    // SQLite cannot change a primary key in place: rebuild the table.
    await q.query(`CREATE TABLE process_new (
      instance TEXT NOT NULL DEFAULT 'host-kernel',
      pid INTEGER NOT NULL,
      comm TEXT NOT NULL,
      state TEXT NOT NULL CHECK (state IN ('running', 'exited')),
      created_ms INTEGER NOT NULL,
      exited_ms INTEGER,
      exit_reason TEXT,
      PRIMARY KEY (instance, pid)
    )`);
    await q.query(`INSERT INTO process_new (pid, comm, state, created_ms, exited_ms, exit_reason) SELECT pid, comm, state, created_ms, exited_ms, exit_reason FROM process`);
    await q.query(`DROP TABLE process`);
    await q.query(`ALTER TABLE process_new RENAME TO process`);
  }

  async down(): Promise<void> {
    throw new Error('ProcessInstance1764000000011 is not reversible');
  }
}

/** The process table's migrations, in order (every place that opens a host kernel database lists these). */
export const PROCESS_MIGRATIONS = [CreateProcess1764000000001, ProcessInstance1764000000011];
