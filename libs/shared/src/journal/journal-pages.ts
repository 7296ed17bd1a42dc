// Reading a journal to the end: Journal.events answers at most one page (its limit is capped), oldest first,
// so anything that must see the whole history (DESIGN §6 audit) walks it page by page, keyset on seq.
import type { JournalEvent, JournalFilter } from './journal';

/** Rows asked for per page: the most Journal.events answers in one call. */
export const JOURNAL_PAGE_ROWS = 10_000;

/**
 * Every row matching `filter`, oldest first, one page at a time: each page asks for the rows after the
 * last seq seen (`afterSeq`), until a page comes back empty. Rows appended while it runs are included if
 * they match; a page never repeats or skips a row (seq is the primary key and only grows).
 */
export async function* journalPages(
  journal: { events(filter: JournalFilter): Promise<JournalEvent[]> },
  filter: Omit<JournalFilter, 'limit'>,
  pageRows = JOURNAL_PAGE_ROWS,
): AsyncGenerator<JournalEvent[]> {
  let afterSeq = filter.afterSeq;
  for (;;) {
    const page = await journal.events({ ...filter, afterSeq, limit: pageRows });
    if (page.length === 0) return;
    yield page;
    afterSeq = page[page.length - 1].seq;
  }
}

/** Every row matching `filter`, oldest first, however many there are. */
export async function allJournalEvents(
  journal: { events(filter: JournalFilter): Promise<JournalEvent[]> },
  filter: Omit<JournalFilter, 'limit'>,
  pageRows = JOURNAL_PAGE_ROWS,
): Promise<JournalEvent[]> {
  const rows: JournalEvent[] = [];
  for await (const page of journalPages(journal, filter, pageRows)) for (const row of page) rows.push(row);
  return rows;
}
