import { KernelError } from '@app/shared/errno';

/**
 * fail_nth for the simulated kernel (Linux lib/fault-inject.c, as iommufd's selftest uses it):
 * when armed with n, the nth internal step of the next calls throws ENOMEM, exactly once.
 */
export class FaultInjector {
  private failAt = 0;
  private count = 0;
  /** Name of the step that failed since the last arm(), or null. */
  fired: string | null = null;

  arm(nth: number): void {
    if (!Number.isInteger(nth) || nth < 1) throw new KernelError('EINVAL', `fail_nth must be >= 1, got ${nth}`);
    this.failAt = nth;
    this.count = 0;
    this.fired = null;
  }

  disarm(): void {
    this.failAt = 0;
  }

  /** Steps counted since the last arm(). */
  get steps(): number {
    return this.count;
  }

  step(name: string): void {
    if (this.failAt === 0) return;
    this.count++;
    if (this.count !== this.failAt) return;
    this.failAt = 0;
    this.fired = name;
    throw new KernelError('ENOMEM', `fault injected at step ${this.count} (${name})`);
  }
}

/** Something a transaction reports (a PASID parked or freed, a process exited): journaled with its call. */
export interface TxEvent {
  kind: string;
  pid?: number;
  [k: string]: unknown;
}

/**
 * One mutating call. Every change is made through do() (a named fault point + its inverse) so a failure
 * anywhere rolls everything back in reverse order: all-or-nothing is structural, as with iommufd's
 * allocate → finalize / abort. What the call reports goes to emit(): kept only if it commits, and journaled
 * with it. Irreversible effects (cache flushes, drains) go to defer() and run on commit, after the journal row.
 */
export class Tx {
  /**
   * The undo log, four slots per step: the inverse, its subject and argument, and the step's result. A
   * closure-free step (doOn) allocates nothing but its slots; the log exists only once a call changes something.
   */
  private log: unknown[] | null = null;
  /** Effects to run on commit, four slots each like the undo log: the function, its subject and two arguments. */
  private deferred: unknown[] | null = null;
  private reported: TxEvent[] | null = null;

  constructor(private readonly faults?: FaultInjector) {}

  /** Events of this call, in order; none after a rollback. */
  get events(): readonly TxEvent[] {
    return this.reported ?? NO_EVENTS;
  }

  /** A fault point: an internal step that may fail (allocation, hardware programming, a hook). */
  step(name: string): void {
    this.faults?.step(name);
  }

  /** step(name), then apply, remembering how to revert it. */
  do<T>(name: string, apply: () => T, revert: (result: T) => void): T {
    this.step(name);
    const result = apply();
    this.remember(callRevert as (r: (result: T) => void, a: undefined, result: T) => void, revert, undefined, result);
    return result;
  }

  /**
   * do() for hot paths, without a closure per call: apply(subject, arg) and, on rollback, revert(subject, arg,
   * result), both plain functions defined once.
   */
  doOn<S, A, T>(name: string, subject: S, arg: A, apply: (subject: S, arg: A) => T, revert: (subject: S, arg: A, result: T) => void): T {
    this.step(name);
    const result = apply(subject, arg);
    this.remember(revert, subject, arg, result);
    return result;
  }

  /** Register the inverse of a change already made. */
  onUndo(revert: () => void): void {
    this.remember(callRevert, revert, undefined, undefined);
  }

  /** Run after commit, in order; must not fail. */
  defer(effect: () => void): void {
    this.deferOn(callEffect, effect, undefined, undefined);
  }

  /** defer() for hot paths, without a closure per call: effect(subject, a, b) on commit, a plain function defined once. */
  deferOn<S, A, B>(effect: (subject: S, a: A, b: B) => void, subject: S, a: A, b: B): void {
    if (this.deferred === null) this.deferred = [effect, subject, a, b];
    else this.deferred.push(effect, subject, a, b);
  }

  /** Reports an event of this call (dropped if it rolls back). */
  emit(event: TxEvent): void {
    (this.reported ??= []).push(event);
  }

  rollback(): void {
    const log = this.log;
    this.log = null;
    if (log) for (let i = log.length - 4; i >= 0; i -= 4) (log[i] as (s: unknown, a: unknown, r: unknown) => void)(log[i + 1], log[i + 2], log[i + 3]);
    this.deferred = null;
    this.reported = null;
  }

  commit(): void {
    this.log = null;
    const effects = this.deferred;
    this.deferred = null;
    if (effects) for (let i = 0; i < effects.length; i += 4) (effects[i] as (s: unknown, a: unknown, b: unknown) => void)(effects[i + 1], effects[i + 2], effects[i + 3]);
  }

  private remember<S, A, T>(revert: (s: S, a: A, r: T) => void, subject: S, arg: A, result: T): void {
    if (this.log === null) this.log = [revert, subject, arg, result];
    else this.log.push(revert, subject, arg, result);
  }
}

const NO_EVENTS: readonly TxEvent[] = Object.freeze([]);

/** The inverse of a do() or onUndo() step: the closure it was given, called with the step's result. */
function callRevert(revert: (result: unknown) => void, _arg: undefined, result: unknown): void {
  revert(result);
}

/** A defer() effect: the closure it was given. */
function callEffect(effect: () => void): void {
  effect();
}

/** Run fn as one transaction: commit on return (then hand its events to `onEvent`), roll back everything on throw. */
export function atomically<T>(faults: FaultInjector | undefined, fn: (tx: Tx) => T, onEvent?: (e: TxEvent) => void): T {
  const tx = new Tx(faults);
  let result: T;
  try {
    result = fn(tx);
  } catch (err) {
    tx.rollback();
    throw err;
  }
  tx.commit();
  if (onEvent) deliver(tx.events, onEvent);
  return result;
}

/**
 * A committed call's events to `onEvent`, in order. An index loop: most calls have none, and for-of over the shared
 * frozen empty list built an iterator every time.
 */
export function deliver(events: readonly TxEvent[], onEvent: (e: TxEvent) => void): void {
  for (let i = 0; i < events.length; i++) onEvent(events[i]);
}
