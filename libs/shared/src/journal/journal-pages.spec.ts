import { LamportClock } from '../clock';
import { createDataSource, WriteLock } from '../db';
import { Journal, type JournalFilter } from './journal';
import { allJournalEvents, journalPages } from './journal-pages';
import { JOURNAL_READ_MAX } from './journal-query';

describe('journalPages', () => {
  it('walks every matching row once, oldest first, in pages keyed on seq, from an optional afterSeq', async () => {
    const ds = createDataSource({ path: ':memory:' });
    await ds.initialize();
    try {
      const journal = new Journal(ds, 'test-app', new LamportClock(), new WriteLock());
      for (let i = 0; i < 20; i++) await journal.record({ actor: 'pid:1', operation: i % 3 === 0 ? 'other' : 'op', object: `n:${i}` });
      const wanted: Array<{ seq: number }> = await ds.query(`SELECT seq FROM journal WHERE operation = 'op' ORDER BY seq`);

      const pages: number[][] = [];
      for await (const page of journalPages(journal, { operation: 'op' }, 4)) pages.push(page.map((r) => r.seq));
      expect(pages.map((p) => p.length)).toEqual([4, 4, 4, 1]);
      expect(pages.flat()).toEqual(wanted.map((r) => r.seq));

      const from = wanted[5].seq;
      expect((await allJournalEvents(journal, { operation: 'op', afterSeq: from }, 4)).map((r) => r.seq)).toEqual(wanted.slice(6).map((r) => r.seq));
      expect(await allJournalEvents(journal, { operation: 'none' }, 4)).toEqual([]);

      // A short page is the last: 13 rows in pages of 4 are four reads, not a fifth that comes back empty.
      // A full last page (13 in pages of 13) still asks once more, since more rows may follow it.
      const reads: number[] = [];
      const counted = { events: (f: JournalFilter) => (reads.push(f.limit ?? 0), journal.events(f)) };
      expect(await allJournalEvents(counted, { operation: 'op' }, 4)).toHaveLength(13);
      expect(reads).toEqual([4, 4, 4, 4]);
      reads.length = 0;
      expect(await allJournalEvents(counted, { operation: 'op' }, 13)).toHaveLength(13);
      expect(reads).toEqual([13, 13]);
      // A page longer than one read may answer is asked as the longest one (else its short answer would end the walk).
      reads.length = 0;
      expect(await allJournalEvents(counted, { operation: 'op' }, 50_000)).toHaveLength(13);
      expect(reads).toEqual([JOURNAL_READ_MAX]);
    } finally {
      await ds.destroy();
    }
  });
});
