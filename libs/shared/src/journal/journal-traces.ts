// The recent traces of a journal (the /ui trace list, `npm run cli -- traces`): one line per trace id, newest
// first, with where it began. Plain SQL that SQLite and PostgreSQL both run.
import type { Journal } from './journal';

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

/** This journal's own rows (its app and instance: a database may be shared), grouped by trace, newest first. */
export async function recentTraces(journal: Journal, limit: number): Promise<TraceSummary[]> {
  const ds = journal.store.ds;
  const pg = ds.options.type === 'postgres';
  // PostgreSQL numbers its placeholders ($1, $2, reused); better-sqlite3 takes `?` in order.
  const [app, instance, app2, instance2] = pg ? ['$1', '$2', '$1', '$2'] : ['?', '?', '?', '?'];
  const rows: Array<Record<string, string | number>> = await ds.query(
    `SELECT trace_id AS trace, MIN(wall_ms) AS first_ms, MAX(wall_ms) AS last_ms, COUNT(*) AS n,
            SUM(CASE WHEN errno IS NULL THEN 0 ELSE 1 END) AS errors, MIN(app) AS app,
            (SELECT j2.operation FROM journal j2 WHERE j2.trace_id = j.trace_id AND j2.app = ${app} AND (j2.instance = ${instance} OR j2.instance IS NULL)
              ORDER BY j2.seq LIMIT 1) AS first_op
       FROM journal j WHERE j.app = ${app2} AND (j.instance = ${instance2} OR j.instance IS NULL)
      GROUP BY trace_id ORDER BY MAX(seq) DESC LIMIT ${Math.max(1, Math.min(Math.floor(limit), 1000))}`,
    pg ? [journal.app, journal.instance] : [journal.app, journal.instance, journal.app, journal.instance],
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
