import type { DataSource, EntityManager } from 'typeorm';
import { LamportClock } from '../clock';
import { WriteLock } from './write-lock';
import { KernelError } from '../errno';
import { currentTrace, newSpanId, newTraceId, runInTrace, type TraceContext } from '../trace';
import type { JournalRow } from './journal.entity';
import { JournalStore, type StateWrite } from './journal-store';
import { type JournalFilter, readJournal } from './journal-query';
import type { InputRequest } from '../replay/input';

export type { StateWrite } from './journal-store';

/** What an operation says about itself before it runs. */
export interface OperationMeta<T> {
  operation: string;
  actor: string;
  args?: unknown;
  /** The object it acts on ("ioasid:5"), or a function of its result (ALLOC names the id it made). */
  object?: string | ((result: T) => string | null);
  /** What to record as the result; defaults to the returned value. */
  recordResult?: (result: T) => unknown;
  /** Marks the row as an input (an external event such as a guest's boot); a request's mark comes by itself. */
  input?: InputRequest;
}

/** A row that a journaled operation produced besides its own (e.g. each fd closed by a process exit). */
export interface ChildRow {
  operation: string;
  actor: string;
  object?: string | null;
  args?: unknown;
  result?: unknown;
  errno?: string | null;
}

/** How an operation ended, as its row records it. */
export interface Outcome {
  object: string | null;
  args: unknown;
  result?: unknown;
  errno: string | null;
}

export type { JournalFilter } from './journal-query';

export interface JournalEvent extends Omit<JournalRow, 'args' | 'result' | 'input' | 'request'> {
  args: unknown;
  result: unknown;
  /** True for a row that entered the stack from outside (absent in hand-built rows: false). */
  input?: boolean;
  request?: InputRequest | null;
}

/**
 * One operation between begin() and commit(): its span (calls made inside carry it as their parent) and
 * the child rows it collects.
 */
export class OpenOperation {
  readonly children: ChildRow[] = [];
  readonly wallMs = Date.now();
  private readonly t0 = process.hrtime.bigint();

  constructor(
    readonly operation: string,
    readonly actor: string,
    readonly traceId: string,
    readonly spanId: string,
    readonly parentSpanId: string | null,
    readonly caller: string | null,
    readonly app: string,
    /** Set when this operation entered the stack from outside (DESIGN §9): the request that replay re-issues. */
    readonly input: InputRequest | null = null,
  ) {}

  /** The trace context inside this operation: outbound calls and nested journal rows hang under its span. */
  get trace(): TraceContext {
    return { traceId: this.traceId, spanId: this.spanId, caller: this.app, actor: this.actor, operation: this.operation };
  }

  get durationMs(): number {
    return Number(process.hrtime.bigint() - this.t0) / 1e6;
  }
}

/**
 * The append-only journal of one app (DESIGN §6). An operation is begin() → its work → commit(): the row and
 * the state the operation persists are one database transaction, and a domain transaction commits only after
 * that write succeeded (the host kernel's dispatcher), so a state change never exists without its row.
 * `run` is the same for async operations (VMM, guest): a failure is journaled with its errno and changes
 * nothing the operation would have persisted.
 */
export class Journal {
  readonly store: JournalStore;
  /** The highest seq when the app started (names this boot: seeded streams of different boots never repeat). */
  bootSeq = 0;

  constructor(
    ds: DataSource,
    readonly app: string,
    readonly clock: LamportClock = new LamportClock(),
    lock: WriteLock = new WriteLock(),
    /** This app instance (INSTANCE, default the app's name): every row names it (DESIGN §12). */
    readonly instance: string = app,
  ) {
    this.store = new JournalStore(ds, lock, instance);
  }

  /** Restores the Lamport clock past every row already written (restart; every app's start runs it). */
  async recover(): Promise<void> {
    const rows: Array<{ m: number | string | null; s: number | string | null }> = await this.store.ds.query('SELECT MAX(logical) AS m, MAX(seq) AS s FROM journal');
    this.clock.restore(Number(rows[0]?.m ?? 0));
    this.bootSeq = Number(rows[0]?.s ?? 0);
  }

  /**
   * Opens an operation under the current trace (a new trace when there is none). The first operation begun
   * under an outside request is that request's input row; `input` marks an event row explicitly.
   */
  begin(operation: string, actor: string, input: InputRequest | null = null): OpenOperation {
    const outer = currentTrace();
    const mark = outer?.input;
    if (!input && mark && !mark.taken) {
      mark.taken = true;
      input = mark.request;
    }
    return new OpenOperation(operation, actor, outer?.traceId ?? newTraceId(), newSpanId(), outer?.spanId ?? null, outer?.caller ?? null, this.app, input);
  }

  /** The rows of a finished operation: its own, then its children under its span, each taking a Lamport tick. */
  rows(op: OpenOperation, outcome: Outcome): Omit<JournalRow, 'seq'>[] {
    const own = {
      app: this.app,
      actor: op.actor,
      operation: op.operation,
      object: outcome.object,
      args: JSON.stringify(outcome.args ?? {}),
      result: outcome.result === undefined ? null : JSON.stringify(outcome.result),
      errno: outcome.errno,
      traceId: op.traceId,
      spanId: op.spanId,
      parentSpanId: op.parentSpanId,
      caller: op.caller,
      logical: this.clock.tick(),
      wallMs: op.wallMs,
      durationMs: op.durationMs,
      instance: this.instance,
      input: op.input ? 1 : 0,
      request: op.input ? JSON.stringify(op.input) : null,
    };
    return [
      own,
      ...op.children.map((child) => ({
        app: this.app,
        actor: child.actor,
        operation: child.operation,
        object: child.object ?? null,
        args: JSON.stringify(child.args ?? {}),
        result: child.result === undefined ? null : JSON.stringify(child.result),
        errno: child.errno ?? null,
        traceId: op.traceId,
        spanId: newSpanId(),
        parentSpanId: op.spanId,
        caller: this.app,
        logical: this.clock.tick(),
        wallMs: op.wallMs,
        durationMs: 0,
        instance: this.instance,
        input: 0,
        request: null,
      })),
    ];
  }

  /**
   * Writes the operation's rows and `writes` in one transaction: synchronously when the store can (SQLite),
   * else as a promise. Throws (rejects) when nothing could be written; then nothing was.
   */
  commit(op: OpenOperation, outcome: Outcome, writes: StateWrite[] = []): void | Promise<void> {
    return this.store.write(this.rows(op, outcome), writes);
  }

  /**
   * Runs one async operation: opens its span, runs `fn` inside it, then commits its row with the state
   * `persist` names for the result. A failure of `fn` is journaled with its errno and rethrown; a failure of
   * the commit rejects with EIO (the caller undoes what it did).
   */
  async run<T>(
    meta: OperationMeta<T>,
    fn: (scope: { addChild(row: ChildRow): void }) => Promise<T> | T,
    persist?: (result: T) => StateWrite[],
  ): Promise<T> {
    const op = this.begin(meta.operation, meta.actor, meta.input ?? null);
    let result: T;
    try {
      result = await runInTrace(op.trace, () => fn({ addChild: (row) => op.children.push(row) }));
    } catch (err) {
      await this.commitFailure(op, typeof meta.object === 'string' ? meta.object : null, meta.args, err);
      throw err;
    }
    const object = typeof meta.object === 'function' ? meta.object(result) : (meta.object ?? null);
    const recorded = meta.recordResult ? meta.recordResult(result) : result;
    try {
      await this.commit(op, { object, args: meta.args, result: recorded, errno: null }, persist?.(result) ?? []);
    } catch (err) {
      throw new KernelError('EIO', `${meta.operation}: the journal row could not be written (${(err as Error).message})`);
    }
    return result;
  }

  /**
   * Journals a refused operation with its errno (a refusal changes nothing, so no state goes with it). If even
   * that row cannot be written the refusal still stands: the caller gets the original error.
   */
  async commitFailure(op: OpenOperation, object: string | null, args: unknown, err: unknown): Promise<void> {
    const errno = err instanceof KernelError ? err.errno : 'EIO';
    try {
      await this.commit(op, { object, args, errno });
    } catch {
      /* nothing changed; the refusal is what the caller sees */
    }
  }

  /**
   * Journals an event that is not a call (a hardware fault, a lifeline drop) under the current trace, with what
   * it persists; `input` marks an external event (an app killed, time advanced) as an input.
   */
  record(row: ChildRow, writes: StateWrite[] = [], input: InputRequest | null = null): void | Promise<void> {
    const op = this.begin(row.operation, row.actor, input);
    return this.commit(op, { object: row.object ?? null, args: row.args, result: row.result, errno: row.errno ?? null }, writes);
  }

  /** Writes state outside any journaled operation (recovery bookkeeping), under the same lock. */
  transaction<T>(fn: (em: EntityManager) => Promise<T>): Promise<T> {
    return this.store.transaction(fn);
  }

  /** This app's rows matching `filter`, oldest first, one page of at most 10,000 (journal-query.ts). */
  async events(filter: JournalFilter): Promise<JournalEvent[]> {
    const rows = await readJournal(this.store, filter, this.app, this.instance);
    return rows.map(parseRow);
  }
}

/** A stored row as plain data: JSON columns parsed, the input flag a boolean. */
export function parseRow(r: JournalRow): JournalEvent {
  return {
    ...r,
    args: JSON.parse(r.args) as unknown,
    result: r.result === null ? null : (JSON.parse(r.result) as unknown),
    input: Number(r.input) === 1,
    request: r.request ? (JSON.parse(r.request) as InputRequest) : null,
  };
}
