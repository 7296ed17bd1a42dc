import type { JournalEvent } from '../journal/journal';

/** Merges event lists from several apps, dropping duplicates (the same app's row reached twice). */
export function mergeEvents(lists: JournalEvent[][]): JournalEvent[] {
  const seen = new Map<string, JournalEvent>();
  for (const list of lists) for (const e of list) seen.set(`${e.app}#${e.seq}`, e);
  return [...seen.values()].sort((a, b) => a.wallMs - b.wallMs || a.logical - b.logical);
}
