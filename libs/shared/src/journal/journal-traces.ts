// The recent traces of a journal (the /ui trace list, `npm run cli -- traces`): one line per trace id, newest
// first, with where it began. Plain SQL that SQLite and PostgreSQL both run.
import type { DataSource } from 'typeorm';

export interface TraceSummary {
  traceId: string;
  /** The operation of the trace's first row in this journal. */
  first: string;
  apps: string[];
  rows: number;
  errors: number;
  firstMs: number;
  lastMs: number;
}

export async function recentTraces(ds: DataSource, limit: number): Promise<TraceSummary[]> {
  const rows: Array<Record<string, string | number>> = await ds.query(
    `SELECT trace_id AS trace, MIN(wall_ms) AS first_ms, MAX(wall_ms) AS last_ms, COUNT(*) AS n,
            SUM(CASE WHEN errno IS NULL THEN 0 ELSE 1 END) AS errors, MIN(app) AS app,
            (SELECT j2.operation FROM journal j2 WHERE j2.trace_id = j.trace_id ORDER BY j2.seq LIMIT 1) AS first_op
       FROM journal j GROUP BY trace_id ORDER BY MAX(seq) DESC LIMIT ${Math.max(1, Math.min(Math.floor(limit), 1000))}`,
  );
  // PostgreSQL answers COUNT/SUM/bigint as strings.
  return rows.map((r) => ({
    traceId: String(r.trace),
    first: String(r.first_op),
    apps: [String(r.app)],
    rows: Number(r.n),
    errors: Number(r.errors),
    firstMs: Number(r.first_ms),
    lastMs: Number(r.last_ms),
  }));
}

/** Trace lists of several apps as one: a trace seen by several apps is one line, begun where it began first. */
export function mergeTraces(lists: TraceSummary[][], limit: number): TraceSummary[] {
  const byId = new Map<string, TraceSummary>();
  for (const list of lists) {
    for (const t of list) {
      const seen = byId.get(t.traceId);
      if (!seen) {
        byId.set(t.traceId, { ...t, apps: [...t.apps] });
        continue;
      }
      if (t.firstMs < seen.firstMs) seen.first = t.first;
      seen.apps = [...new Set([...seen.apps, ...t.apps])].sort();
      seen.rows += t.rows;
      seen.errors += t.errors;
      seen.firstMs = Math.min(seen.firstMs, t.firstMs);
      seen.lastMs = Math.max(seen.lastMs, t.lastMs);
    }
  }
  return [...byId.values()].sort((a, b) => b.lastMs - a.lastMs).slice(0, limit);
}
