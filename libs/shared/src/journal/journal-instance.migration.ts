import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Each journal row names the app instance that wrote it (INSTANCE, default the app's name), so several apps of
 * one kind can share a database for fleet-wide audit (DESIGN §12). Rows written before this migration keep
 * NULL: they belong to the only instance there was. Adding a column is not an UPDATE: the append-only
 * triggers stay as they are.
 */
export class JournalInstance1764000000010 implements MigrationInterface {
  name = 'JournalInstance1764000000010';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE journal ADD COLUMN instance TEXT`);
    await q.query(`CREATE INDEX journal_app_instance ON journal (app, instance)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX journal_app_instance`);
    await q.query(`ALTER TABLE journal DROP COLUMN instance`);
  }
}
