import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Every journal read names its app and reads in seq order, most of them the rows after a seq (the replayer's and
 * the fuzzer's cursors, a page of the audit plane). With only (app, instance) to go by, SQLite searched every row
 * of the app and sorted them: a read after the last step cost time in proportion to the whole journal (11.5 ms
 * at 100,000 rows). On (app, seq) the read is a range: 0.06 ms at the same size. Portable SQL.
 */
export class JournalAppSeq1764000009100 implements MigrationInterface {
  name = 'JournalAppSeq1764000009100';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE INDEX journal_app_seq ON journal (app, seq)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX journal_app_seq`);
  }
}
