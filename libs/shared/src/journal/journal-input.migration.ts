import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Inputs (DESIGN §9): whether a row entered the stack from outside, and the request that replay re-issues.
 * Portable SQL (INTEGER/TEXT, ADD COLUMN), so it runs unchanged on PostgreSQL.
 */
export class AddJournalInput1764000009000 implements MigrationInterface {
  name = 'AddJournalInput1764000009000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE journal ADD COLUMN input INTEGER NOT NULL DEFAULT 0`);
    await q.query(`ALTER TABLE journal ADD COLUMN request TEXT`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE journal DROP COLUMN request`);
    await q.query(`ALTER TABLE journal DROP COLUMN input`);
  }
}
