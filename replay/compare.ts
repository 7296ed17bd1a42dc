// Replay's comparison (DESIGN §9): each journal's rows in order, on operation, actor, object, args and result
// or errno, as parsed JSON (deep equality). Seq, times, trace and span ids are not compared.
import { isDeepStrictEqual } from 'node:util';
import type { RecordedRow } from './recording';

export const COMPARED = ['operation', 'actor', 'object', 'args', 'result', 'errno'] as const;
export type Compared = Pick<RecordedRow, (typeof COMPARED)[number]>;

/** The fields where two rows differ (empty: the same row). */
export function differences(recorded: Compared, replayed: Compared): string[] {
  return COMPARED.filter((f) => !isDeepStrictEqual(recorded[f] ?? null, replayed[f] ?? null));
}

export interface Divergence {
  journal: string;
  /** The recorded row's seq (the replayed one's when the recording has no row there). */
  seq: number;
  recorded: RecordedRow | null;
  replayed: RecordedRow | null;
  fields: string[];
  /** Index (0-based) of the input being replayed when it showed, and that input's recorded row. */
  inputIndex: number;
  input: RecordedRow | null;
}

/** Renders one value for a column: compact JSON, cut to `width`. */
function cell(v: unknown, width: number): string {
  const s = v === undefined ? '—' : JSON.stringify(v);
  return s.length > width ? `${s.slice(0, width - 1)}…` : s;
}

/** The recorded and the replayed row side by side, the differing fields marked. */
export function sideBySide(d: Divergence, width = 58): string {
  const lines = [`  ${'field'.padEnd(10)} ${'recorded'.padEnd(width)}   replayed`];
  for (const f of COMPARED) {
    const mark = d.fields.includes(f) ? '≠' : ' ';
    lines.push(`${mark} ${f.padEnd(10)} ${cell(d.recorded ? d.recorded[f] : undefined, width).padEnd(width)}   ${cell(d.replayed ? d.replayed[f] : undefined, width)}`);
  }
  for (const f of d.fields) {
    const a = JSON.stringify(d.recorded?.[f as keyof Compared]);
    const b = JSON.stringify(d.replayed?.[f as keyof Compared]);
    if ((a?.length ?? 0) > width || (b?.length ?? 0) > width) lines.push(`  ${f} recorded: ${a}`, `  ${f} replayed: ${b}`);
  }
  return lines.join('\n');
}
