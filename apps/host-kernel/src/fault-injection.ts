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
  private readonly undos: Array<() => void> = [];
  private readonly deferred: Array<() => void> = [];
  /** Events of this call, in order; emptied by a rollback. */
  readonly events: TxEvent[] = [];

  constructor(private readonly faults?: FaultInjector) {}

  /** A fault point: an internal step that may fail (allocation, hardware programming, a hook). */
  step(name: string): void {
    this.faults?.step(name);
  }

  /** step(name), then apply, remembering how to revert it. */
  do<T>(name: string, apply: () => T, revert: (result: T) => void): T {
    this.step(name);
    const result = apply();
    this.undos.push(() => revert(result));
    return result;
  }

  /** Register the inverse of a change already made. */
  onUndo(revert: () => void): void {
    this.undos.push(revert);
  }

  /** Run after commit, in order; must not fail. */
  defer(effect: () => void): void {
    this.deferred.push(effect);
  }

  /** Reports an event of this call (dropped if it rolls back). */
  emit(event: TxEvent): void {
    this.events.push(event);
  }

  rollback(): void {
    for (let i = this.undos.length - 1; i >= 0; i--) this.undos[i]();
    this.undos.length = 0;
    this.deferred.length = 0;
    this.events.length = 0;
  }

  commit(): void {
    this.undos.length = 0;
    const effects = this.deferred.splice(0);
    for (const effect of effects) effect();
  }
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
  if (onEvent) for (const e of tx.events) onEvent(e);
  return result;
}
