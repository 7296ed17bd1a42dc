// How the CLI prints: tables for people (cli-table3, colour only on a terminal), JSON for scripts (--json).
'use strict';
const Table = require('cli-table3');

const tty = Boolean(process.stdout.isTTY);

function table(head, rows) {
  const t = new Table({ head, style: tty ? { head: ['cyan'] } : { head: [], border: [] } });
  for (const r of rows) t.push(r.map((c) => (c === null || c === undefined ? '-' : String(c))));
  return t.toString();
}

const out = (text) => process.stdout.write(`${text}\n`);

/** Prints `data` as JSON with --json, else as `human(data)` (a string, or lines). */
function emit(opts, data, human) {
  if (opts.json) return out(JSON.stringify(data, null, 2));
  const text = human(data);
  out(Array.isArray(text) ? text.join('\n') : text);
}

const iso = (ms) => new Date(ms).toISOString();

/** One journal row on one line, as `events` and `watch` print it. */
function row(r) {
  const result = r.errno ?? JSON.stringify(r.result ?? null);
  return `${iso(r.wallMs)} ${r.app.padEnd(11)} #${String(r.seq).padEnd(5)} ${r.actor.padEnd(8)} ${r.operation.padEnd(22)} ${(r.object ?? '').padEnd(14)} ${result}`;
}

module.exports = { table, emit, out, iso, row };
