// The rows each in-process journal wrote since the last read, with cursors of its own. Only the journals written
// since then are read: each journal's store tells the reader of every committed write of journal rows, and a run
// keeps the journal of every VM it ever ran, so reading each after every step grew with the run (a fifth of a fuzz
// step's time by 40,000 operations).
import type { Journal, JournalEvent } from '@app/shared/journal/journal';
import { allJournalEvents } from '@app/shared/journal/journal-pages';

export class JournalReader {
  private readonly cursors = new Map<string, number>();
  /** The journals written since their last read (by name). */
  private readonly written = new Set<string>();
  private readonly heard = new WeakSet<Journal>();

  /** Every journal of `streams` but `skip`, with its new rows ([] for a quiet one, which is not read). */
  async newRows(streams: Map<string, Journal>, skip: string | null = null): Promise<Map<string, JournalEvent[]>> {
    const out = new Map<string, JournalEvent[]>();
    for (const [name, j] of streams) {
      if (name === skip) continue;
      // A journal object seen for the first time (a fresh app, a restarted one) is read from the cursor once.
      if (!this.heard.has(j)) {
        this.heard.add(j);
        j.store.onRows(() => this.written.add(name));
      } else if (!this.written.has(name)) {
        out.set(name, []);
        continue;
      }
      this.written.delete(name);
      const rows = await allJournalEvents(j, { afterSeq: this.cursors.get(name) ?? 0 });
      if (rows.length) this.cursors.set(name, rows[rows.length - 1].seq);
      out.set(name, rows);
    }
    return out;
  }
}
