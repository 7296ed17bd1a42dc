// Reading a journal to the end: Journal.events answers at most one page (its limit is capped), oldest first,
// so anything that must see the whole history (DESIGN §6 audit) walks it page by page, keyset on seq.
import type { JournalEvent, JournalFilter } from './journal';
import { JOURNAL_READ_MAX } from './journal-query';

/** Rows asked for per page: the most Journal.events answers in one call. */
export const JOURNAL_PAGE_ROWS = JOURNAL_READ_MAX;

/**
 * Every row matching `filter`, oldest first, one page at a time: each page asks for the rows after the
 * last seq seen (`afterSeq`), until a page comes back short of `pageRows` (there was no more to read then).
 * Rows appended before the last page is read are included if they match; a page never repeats or skips a
 * row (seq is the primary key and only grows).
 */
export async function* journalPages(
  journal: { events(filter: JournalFilter): Promise<JournalEvent[]> },
  filter: Omit<JournalFilter, 'limit'>,
  pageRows = JOURNAL_PAGE_ROWS,
): AsyncGenerator<JournalEvent[]> {
  const limit = Math.min(pageRows, JOURNAL_READ_MAX); // a longer page would come back short, and end the walk
  let afterSeq = filter.afterSeq;
  for (;;) {
    const page = await journal.events({ ...filter, afterSeq, limit });
    if (page.length > 0) yield page;
    if (page.length < limit) return;
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
