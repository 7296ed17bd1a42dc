// Structured logs (DESIGN §12): one pino logger per app process, JSON lines on stderr (stdout carries the
// READY/ADMIN_TOKEN lines the supervisor reads), readable lines when stderr is a terminal or LOG_FORMAT=pretty.
// Every line names the app and, from the trace context the request or operation runs in, the trace id, span id,
// actor and operation; a line logged outside any request carries only the app.
import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';
import type { LogOptions } from './log-options';
import type { JournalRow } from '../journal/journal.entity';
import type { JournalStore } from '../journal/journal-store';
import { currentTrace } from '../trace';

export type { Logger } from 'pino';
export type { LogOptions } from './log-options';

/** The trace fields of a line, from the context it is logged in (AsyncLocalStorage, see trace.ts). */
function traceFields(): Record<string, string> {
  const t = currentTrace();
  if (!t) return {};
  const out: Record<string, string> = { traceId: t.traceId };
  if (t.spanId) out.spanId = t.spanId;
  if (t.actor) out.actor = t.actor;
  if (t.operation) out.operation = t.operation;
  return out;
}

export function createLogger(opts: LogOptions): Logger {
  const stream =
    opts.destination ??
    (opts.pretty
      ? pretty({ sync: true, destination: 2, colorize: Boolean(process.stderr.isTTY) || process.env.FORCE_COLOR === '1', translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname,app' })
      : pino.destination({ dest: 2, sync: true }));
  return pino({ level: opts.level, base: { app: opts.app }, mixin: traceFields }, stream);
}

/** Logs every committed journal row at debug: the operation, its actor and object, its errno, in its trace. */
export function logJournalRows(log: Logger, store: JournalStore): void {
  if (!log.isLevelEnabled('debug')) return;
  store.onRows((rows) => {
    for (const r of rows) log.debug(journalFields(r), 'journal row');
  });
}

function journalFields(r: Omit<JournalRow, 'seq'>): Record<string, unknown> {
  return { traceId: r.traceId, spanId: r.spanId, actor: r.actor, operation: r.operation, object: r.object, errno: r.errno, durationMs: r.durationMs };
}

const loggers = new WeakMap<object, Logger>();

/** The one logger of an app process, made from its configuration on first use (bootstrap, CoreModule, services). */
export function loggerFor(config: { log: LogOptions }): Logger {
  let log = loggers.get(config);
  if (!log) {
    log = createLogger(config.log);
    loggers.set(config, log);
  }
  return log;
}
