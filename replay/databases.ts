// The journals of a run as database files: found in a data directory (whatever its layout: `npm start` puts the
// three files side by side, the harness one folder per app), named by the journal they hold, read row by row,
// and copied whole (VACUUM INTO: one consistent file, whatever sat in the WAL of an app that was killed).
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { parseRow, type JournalEvent } from '@app/shared/journal/journal';
import type { JournalRow } from '@app/shared/journal/journal.entity';

/** An app's database file (`npm start` and the harness), or a recording's copy of one (`guest-<vm>.db`). */
const DB_NAME = /^(host-kernel|vmm|guest|guest-\d+|operator)\.db$/;

interface RawRow extends Record<string, unknown> {
  trace_id: string;
  span_id: string;
  parent_span_id: string | null;
  wall_ms: number;
  duration_ms: number;
}

/** Every row of the journal in `file` after `afterSeq`, oldest first. */
export function readJournalFile(file: string, afterSeq = 0): JournalEvent[] {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const cols = new Set((db.prepare(`PRAGMA table_info(journal)`).all() as Array<{ name: string }>).map((c) => c.name));
    const raw = db.prepare(`SELECT * FROM journal WHERE seq > ? ORDER BY seq`).all(afterSeq) as RawRow[];
    return raw.map((r) =>
      parseRow({
        ...(r as unknown as JournalRow),
        traceId: r.trace_id,
        spanId: r.span_id,
        parentSpanId: r.parent_span_id,
        wallMs: r.wall_ms,
        durationMs: r.duration_ms,
        input: cols.has('input') ? Number(r.input) : 0,
        request: cols.has('request') ? (r.request as string | null) : null,
      }),
    );
  } finally {
    db.close();
  }
}

/** A consistent copy of a database file (also of a live one: a read transaction). */
export function copyDatabase(from: string, to: string): void {
  rmSync(to, { force: true });
  const db = new Database(from, { readonly: true, fileMustExist: true });
  try {
    db.exec(`VACUUM INTO '${to.replace(/'/g, "''")}'`);
  } finally {
    db.close();
  }
}

/** The journal a database file holds: its app, and for a guest the VM it booted on (`guest-<vm>`). */
export function journalName(rows: JournalEvent[], file: string): string {
  const app = rows[0]?.app ?? file.split('/').pop()?.replace(/\.db$/, '') ?? 'unknown';
  if (app !== 'guest') return app;
  const vm = rows.map((r) => /^vm:(\d+)$/.exec(r.actor)?.[1]).find((v) => v !== undefined);
  return vm === undefined ? 'guest' : `guest-${vm}`;
}

/** Every journal database under `dir` (recursively), by journal name. */
export function findJournals(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (DB_NAME.test(e.name)) {
        const name = journalName(readJournalFile(p), p);
        if (out.has(name)) throw new Error(`two databases hold the journal ${name}: ${out.get(name)} and ${p}`);
        out.set(name, p);
      }
    }
  };
  if (!existsSync(dir)) throw new Error(`${dir}: no such directory`);
  walk(dir);
  return out;
}
