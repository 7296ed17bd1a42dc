import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The journal table, append-only at the database level: triggers abort any UPDATE or DELETE (and, on
 * PostgreSQL, TRUNCATE), so not even a bug in the app can rewrite history. One branch per driver.
 */
export class CreateJournal1764000000000 implements MigrationInterface {
  name = 'CreateJournal1764000000000';

  async up(q: QueryRunner): Promise<void> {
    const pg = q.connection.options.type === 'postgres';
    await q.query(`CREATE TABLE journal (
      seq ${pg ? 'SERIAL PRIMARY KEY' : 'INTEGER PRIMARY KEY AUTOINCREMENT'},
      app TEXT NOT NULL,
      actor TEXT NOT NULL,
      operation TEXT NOT NULL,
      object TEXT,
      args TEXT NOT NULL,
      result TEXT,
      errno TEXT,
      trace_id TEXT NOT NULL,
      span_id TEXT NOT NULL,
      parent_span_id TEXT,
      caller TEXT,
      logical ${pg ? 'BIGINT' : 'INTEGER'} NOT NULL,
      wall_ms ${pg ? 'BIGINT' : 'INTEGER'} NOT NULL,
      duration_ms ${pg ? 'DOUBLE PRECISION' : 'REAL'} NOT NULL
    )`);
    await q.query(`CREATE INDEX journal_trace ON journal (trace_id)`);
    await q.query(`CREATE INDEX journal_wall ON journal (wall_ms)`);
    await q.query(`CREATE INDEX journal_object ON journal (object)`);
    if (pg) {
      await q.query(`CREATE FUNCTION journal_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'journal is append-only'; END $$`);
      await q.query(`CREATE TRIGGER journal_no_update BEFORE UPDATE OR DELETE ON journal FOR EACH ROW EXECUTE FUNCTION journal_append_only()`);
      await q.query(`CREATE TRIGGER journal_no_truncate BEFORE TRUNCATE ON journal FOR EACH STATEMENT EXECUTE FUNCTION journal_append_only()`);
      return;
    }
    await q.query(`CREATE TRIGGER journal_no_update BEFORE UPDATE ON journal
      BEGIN SELECT RAISE(ABORT, 'journal is append-only'); END`);
    await q.query(`CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal
      BEGIN SELECT RAISE(ABORT, 'journal is append-only'); END`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE journal`);
    if (q.connection.options.type === 'postgres') await q.query(`DROP FUNCTION journal_append_only()`);
  }
}
