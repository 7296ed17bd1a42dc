import { EntitySchema, type MigrationInterface, type QueryRunner } from 'typeorm';

/** A host process as the database keeps it: enough to audit it and to never reuse its pid. */
export interface ProcessRow {
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
    await q.query(`CREATE TABLE process (
      pid INTEGER PRIMARY KEY,
      comm TEXT NOT NULL,
      state TEXT NOT NULL CHECK (state IN ('running', 'exited')),
      created_ms INTEGER NOT NULL,
      exited_ms INTEGER,
      exit_reason TEXT
    )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE process`);
  }
}
