import { LamportClock } from '../clock';
import { createDataSource, WriteLock } from '../db';
import { Journal } from './journal';
import { allJournalEvents, journalPages } from './journal-pages';

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
    } finally {
      await ds.destroy();
    }
  });
});
