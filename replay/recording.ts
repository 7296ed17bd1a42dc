// A recording (DESIGN §9): a directory with `recording.jsonl` — every row of every journal of a run, one JSON
// object per line, merged in causal order (Lamport time; a row's own journal order is kept) — the journals'
// database files, and `config.json`, what a fresh stack needs to run it again (seed, devices, memory, quota).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { InputRequest } from '@app/shared/replay/input';
import type { JournalEvent } from '@app/shared/journal/journal';
import type { DeviceConfig } from '../apps/host-kernel/src/kernel';

/** One line of recording.jsonl. */
export interface RecordedRow {
  /** The journal it belongs to: `host-kernel`, `vmm`, `guest-<vm>`, `operator`. */
  journal: string;
  app: string;
  seq: number;
  logical: number;
  operation: string;
  actor: string;
  object: string | null;
  args: unknown;
  result: unknown;
  errno: string | null;
  trace: string;
  span: string;
  parent: string | null;
  caller: string | null;
  wallMs: number;
  input: boolean;
  request?: InputRequest;
}

/** What a fresh stack needs to replay a recording. */
export interface StackConfig {
  /** SEED of every app (null: the run was not deterministic; tokens are learned from the answers anyway). */
  seed: number | null;
  memoryMiB: number;
  devices: DeviceConfig[];
  pasidQuota: number;
  /** The VMM's DEBUG_STALL_BEFORE knob (crash scenarios). */
  debugStallBefore: string | null;
}

export const DEFAULT_CONFIG: StackConfig = {
  seed: 1,
  memoryMiB: 1024,
  devices: [
    { bdf: '0000:6a:01.0', vendorId: 0x8086, deviceId: 0x0b25, pasidWidth: 20, wqDepth: 32 },
    { bdf: '0000:6b:01.0', vendorId: 0x8086, deviceId: 0x0b25, pasidWidth: 20, wqDepth: 32 },
  ],
  pasidQuota: 64,
  debugStallBefore: null,
};

export interface Recording {
  dir: string;
  config: StackConfig;
  /** Every row, in causal order. */
  rows: RecordedRow[];
  /** Each journal's rows in seq order. */
  journals: Map<string, RecordedRow[]>;
}

/** A recording that cannot be read: the message names the file and line. Exit code 2. */
export class RecordingError extends Error {}

export const RECORDING_FILE = 'recording.jsonl';
export const CONFIG_FILE = 'config.json';

/** A journal row as a recording line. */
export function toRecorded(journal: string, e: JournalEvent): RecordedRow {
  return {
    journal,
    app: e.app,
    seq: e.seq,
    logical: e.logical,
    operation: e.operation,
    actor: e.actor,
    object: e.object,
    args: e.args,
    result: e.result,
    errno: e.errno,
    trace: e.traceId,
    span: e.spanId,
    parent: e.parentSpanId,
    caller: e.caller,
    wallMs: e.wallMs,
    input: e.input === true,
    ...(e.input && e.request ? { request: e.request } : {}),
  };
}

/** A recording line as a journal row again (for sequence diagrams). */
export function toEvent(r: RecordedRow): JournalEvent {
  return {
    seq: r.seq,
    app: r.app,
    actor: r.actor,
    operation: r.operation,
    object: r.object,
    args: r.args,
    result: r.result,
    errno: r.errno,
    traceId: r.trace,
    spanId: r.span,
    parentSpanId: r.parent,
    caller: r.caller,
    logical: r.logical,
    wallMs: r.wallMs,
    durationMs: 0,
    input: r.input,
    request: r.request ?? null,
  };
}

/** Where a journal stands in a merge at equal Lamport time: the caller's side first. */
const RANK = (journal: string): number => (journal === 'operator' ? 0 : journal.startsWith('guest') ? 1 : journal === 'vmm' ? 2 : 3);

/**
 * Merges journals in causal order: repeatedly the head with the smallest Lamport time (ties: operator, guests,
 * VMM, host, then seq), so each journal keeps its own order and a row caused by another comes after it.
 */
export function mergeCausal(journals: Map<string, RecordedRow[]>): RecordedRow[] {
  const heads = [...journals.entries()].map(([name, rows]) => ({ name, rows, i: 0 }));
  const out: RecordedRow[] = [];
  for (;;) {
    let best: (typeof heads)[number] | null = null;
    for (const h of heads) {
      if (h.i >= h.rows.length) continue;
      const a = h.rows[h.i];
      const b = best?.rows[best.i];
      if (!b || a.logical < b.logical || (a.logical === b.logical && (RANK(h.name) < RANK((best as typeof h).name) || (RANK(h.name) === RANK((best as typeof h).name) && h.name < (best as typeof h).name)))) best = h;
    }
    if (!best) return out;
    out.push(best.rows[best.i++]);
  }
}

const FIELDS: Array<[keyof RecordedRow, (v: unknown) => boolean]> = [
  ['journal', (v) => typeof v === 'string' && v.length > 0],
  ['app', (v) => typeof v === 'string'],
  ['seq', (v) => Number.isSafeInteger(v) && (v as number) > 0],
  ['logical', (v) => Number.isSafeInteger(v)],
  ['operation', (v) => typeof v === 'string' && v.length > 0],
  ['actor', (v) => typeof v === 'string'],
  ['object', (v) => v === null || typeof v === 'string'],
  ['args', (v) => v !== undefined],
  ['result', (v) => v !== undefined],
  ['errno', (v) => v === null || typeof v === 'string'],
  ['trace', (v) => typeof v === 'string'],
  ['input', (v) => typeof v === 'boolean'],
];

/** Reads a recording directory; a line that is not a complete row is a RecordingError naming it. */
export function readRecording(dir: string): Recording {
  const file = join(dir, RECORDING_FILE);
  if (!existsSync(file)) throw new RecordingError(`${file}: no such file (a recording is a directory holding ${RECORDING_FILE})`);
  const text = readFileSync(file, 'utf8');
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  else if (lines.length > 0) throw new RecordingError(`${file} line ${lines.length}: truncated (the last line has no newline)`);
  const journals = new Map<string, RecordedRow[]>();
  const rows: RecordedRow[] = [];
  lines.forEach((line, i) => {
    const where = `${file} line ${i + 1}`;
    let row: RecordedRow;
    try {
      row = JSON.parse(line) as RecordedRow;
    } catch (err) {
      throw new RecordingError(`${where}: not JSON (${(err as Error).message})`);
    }
    if (row === null || typeof row !== 'object' || Array.isArray(row)) throw new RecordingError(`${where}: not a JSON object`);
    for (const [field, ok] of FIELDS) if (!ok(row[field])) throw new RecordingError(`${where}: field "${field}" is missing or malformed`);
    if (row.input && (row.request === null || typeof row.request !== 'object' || typeof row.request.kind !== 'string')) throw new RecordingError(`${where}: an input without its request`);
    const own = journals.get(row.journal) ?? [];
    const prev = own.at(-1);
    if (prev && row.seq <= prev.seq) throw new RecordingError(`${where}: ${row.journal} seq ${row.seq} after seq ${prev.seq}`);
    own.push(row);
    journals.set(row.journal, own);
    rows.push(row);
  });
  return { dir, config: readConfig(dir), rows, journals };
}

function readConfig(dir: string): StackConfig {
  const file = join(dir, CONFIG_FILE);
  if (!existsSync(file)) return DEFAULT_CONFIG;
  try {
    return { ...DEFAULT_CONFIG, ...(JSON.parse(readFileSync(file, 'utf8')) as Partial<StackConfig>) };
  } catch (err) {
    throw new RecordingError(`${file}: ${(err as Error).message}`);
  }
}

/** Writes recording.jsonl (the journals merged in causal order) and config.json into `dir`. */
export function writeRecording(dir: string, journals: Map<string, RecordedRow[]>, config: StackConfig): RecordedRow[] {
  const rows = mergeCausal(journals);
  writeFileSync(join(dir, RECORDING_FILE), rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length ? '\n' : ''));
  writeFileSync(join(dir, CONFIG_FILE), JSON.stringify(config, null, 2) + '\n');
  return rows;
}
