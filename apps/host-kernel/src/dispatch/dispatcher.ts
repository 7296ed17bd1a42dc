// The one place a host call is journaled (DESIGN §6): the handler runs in a transaction, its row (with the
// events it produced as child rows, and the state it persists) is appended, and only then does the transaction
// commit; a failed append rolls the change back and answers EIO, so no state change exists without its row.
// fail_nth (fault-injection.ts) counts the append as one more step that can fail.
import type { ChildRow, Journal, OpenOperation, StateWrite } from '@app/shared/journal/journal';
import { KernelError } from '@app/shared/errno';
import { runInTrace } from '@app/shared/trace';
import { Tx, type TxEvent } from '../fault-injection';
import { type DispatchKernel, invoke } from './invoke';
import { actorOf, type CallerTask, type HostCaller, type Op, type OpFile } from './op';

export interface DispatcherOptions {
  /** Where events go once they are journaled (the owners' lifelines). */
  deliver?: (events: TxEvent[]) => void;
  /** State an event persists with its row (a process exit updates the process table). */
  eventWrites?: (e: TxEvent) => StateWrite[];
  /** Errors of journaling an event outside any call. */
  onError?: (err: unknown) => void;
}

/** A journal row for an event: `event.<kind>`, its actor the process it concerns, its object the PASID or process. */
export function eventRow(e: TxEvent): ChildRow {
  const { kind, pid, ...rest } = e;
  return {
    operation: `event.${kind}`,
    actor: typeof pid === 'number' ? `pid:${pid}` : 'hw',
    object:
      typeof rest.ppasid === 'number'
        ? `ioasid:${rest.ppasid}`
        : typeof rest.object === 'string'
          ? rest.object
          : typeof pid === 'number'
            ? `process:${pid}`
            : null,
    args: rest,
  };
}

export class Dispatcher<K extends DispatchKernel = DispatchKernel> {
  /** Events of the call running now (null: none runs, an event is journaled on its own). */
  private collecting: TxEvent[] | null = null;
  /** Calls waiting for, or holding, the kernel while an asynchronous append is in flight. */
  private pending = 0;
  private tail: Promise<unknown> = Promise.resolve();

  constructor(
    readonly kernel: K,
    readonly journal: Journal,
    private readonly opts: DispatcherOptions = {},
  ) {}

  /**
   * Issues `op` for `caller`. A journaled op is one transaction whose row is written before it commits; a read
   * runs as is. With a synchronous journal (SQLite) nothing yields in between; otherwise calls are serialized
   * so none observes another's uncommitted state.
   */
  exec<A, R, F extends OpFile>(row: Op<never, A, R, F, never>, caller: HostCaller, args: A): Promise<R> {
    // Any kind's row: ops.ts checks at compile time that the kernel has the parts each kind's handlers use.
    const op = row as unknown as Op<K, A, R, F, CallerTask>;
    if (this.pending === 0 && (!op.journal || this.journal.store.syncNow)) {
      try {
        const r = op.journal ? this.runJournaled(op, caller, args) : this.read(op, caller, args);
        return r instanceof Promise ? r : Promise.resolve(r);
      } catch (err) {
        return Promise.reject(err);
      }
    }
    this.pending++;
    const run = this.tail.then(() => (op.journal ? this.runJournaled(op, caller, args) : this.read(op, caller, args)));
    this.tail = run.catch(() => undefined).finally(() => this.pending--);
    return run;
  }

  /**
   * The same call, completed before it returns, for callers on a synchronous journal (SQLite) with nothing else
   * in flight (unit tests, benchmarks); EAGAIN otherwise.
   */
  execSync<A, R, F extends OpFile>(row: Op<never, A, R, F, never>, caller: HostCaller, args: A): R {
    if (this.pending > 0 || !this.journal.store.syncNow) throw new KernelError('EAGAIN', 'the journal cannot write synchronously now');
    const op = row as unknown as Op<K, A, R, F, CallerTask>;
    const r = op.journal ? this.runJournaled(op, caller, args) : this.read(op, caller, args);
    if (r instanceof Promise) throw new Error('a synchronous journal answered asynchronously');
    return r;
  }

  /** Every kernel event goes here: part of the running call, or journaled and delivered on its own. */
  onKernelEvent(e: TxEvent): void {
    if (this.collecting) {
      this.collecting.push(e);
      return;
    }
    try {
      const w = this.journal.record(eventRow(e), this.opts.eventWrites?.(e) ?? []);
      if (w instanceof Promise) w.catch((err: unknown) => this.opts.onError?.(err));
    } catch (err) {
      this.opts.onError?.(err);
    }
    this.opts.deliver?.([e]);
  }

  private read<A, R, F extends OpFile>(op: Op<K, A, R, F, CallerTask>, caller: HostCaller, args: A): R {
    return invoke(this.kernel, op, caller, args, new Tx());
  }

  private runJournaled<A, R, F extends OpFile>(op: Op<K, A, R, F, CallerTask>, caller: HostCaller, args: A): R | Promise<R> {
    const jop = this.journal.begin(op.name, actorOf(caller));
    const recordedArgs = op.args ? op.args(args) : args;
    const tx = new Tx(this.kernel.faults);
    const direct: TxEvent[] = [];
    let result: R;
    this.collecting = direct;
    try {
      result = invoke(this.kernel, op, caller, args, tx);
    } catch (err) {
      tx.rollback();
      this.collecting = null;
      return this.refuse(jop, op.object?.(args, undefined, caller) ?? null, recordedArgs, direct, err);
    }
    this.collecting = null;
    // A call may report any number of events (closing an fd of 2^20 ioasids: two each): never spread them as
    // arguments (the stack bounds those), and whatever fails before the row is written undoes the call.
    const events = direct.concat(tx.events);
    let outcome: { object: string | null; args: unknown; result: unknown; errno: null } = { object: null, args: recordedArgs, result: undefined, errno: null };
    let written: void | Promise<void>;
    try {
      for (const e of events) jop.children.push(eventRow(e));
      const writes = op.persist?.(args, result) ?? [];
      for (const e of tx.events) for (const w of this.opts.eventWrites?.(e) ?? []) writes.push(w);
      outcome = { object: op.object?.(args, result, caller) ?? null, args: recordedArgs, result: op.result ? op.result(result) : result, errno: null };
      tx.step('journal.append');
      written = this.journal.commit(jop, outcome, writes);
    } catch (err) {
      return this.appendFailed(tx, jop, outcome, direct, err);
    }
    if (written instanceof Promise) {
      return written.then(
        () => this.finish(tx, jop, events, result),
        (err: unknown) => this.appendFailed(tx, jop, outcome, direct, err),
      );
    }
    return this.finish(tx, jop, events, result);
  }

  /** The row is written: commit (deferred effects run now, their events journaled under this call's span), deliver. */
  private finish<R>(tx: Tx, jop: OpenOperation, events: TxEvent[], result: R): R {
    runInTrace(jop.trace, () => tx.commit());
    this.opts.deliver?.(events);
    return result;
  }

  /** The append failed: undo the change, journal the refusal if the journal still takes rows, answer EIO. */
  private appendFailed(tx: Tx, jop: OpenOperation, outcome: { object: string | null; args: unknown }, direct: TxEvent[], err: unknown): never | Promise<never> {
    tx.rollback();
    jop.children.length = 0;
    const eio = new KernelError('EIO', `${jop.operation}: the journal row could not be written (${(err as Error).message}); nothing was changed`);
    return this.refuse(jop, outcome.object, outcome.args, direct, eio);
  }

  /** A refused call: its row with the errno (and the events that happened anyway), then the error. */
  private refuse(jop: OpenOperation, object: string | null, args: unknown, direct: TxEvent[], err: unknown): never | Promise<never> {
    for (const e of direct) jop.children.push(eventRow(e));
    const errno = err instanceof KernelError ? err.errno : 'EIO';
    let written: void | Promise<void> = undefined;
    try {
      written = this.journal.commit(jop, { object, args, errno });
    } catch {
      /* the refusal stands even if its row cannot be written */
    }
    this.opts.deliver?.(direct);
    if (written instanceof Promise) return written.then(() => Promise.reject(err), () => Promise.reject(err));
    throw err;
  }
}
