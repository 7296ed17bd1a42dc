// One row of the host kernel's command table (the iommufd `iommufd_ioctl_ops[]` shape, drivers/iommu/iommufd/
// main.c): the operation's name, who may issue it, the fd it acts on and its kind, how the journal names its
// object, and the handler. Each object kind lists its rows in its own `*.ops.ts`; dispatch/dispatcher.ts does
// what every call shares (caller and fd lookup, the transaction, the journal row, events).
import type { HostOperation } from '@app/shared/contract/operations';
import type { AuthKind } from '@app/shared/auth/bearer';
import type { StateWrite } from '@app/shared/journal/journal-store';
import type { Tx } from '../fault-injection';

/** What dispatch knows of an open file: its kind (the fd table checks it). */
export interface OpFile {
  readonly kind: string;
}

/** What dispatch knows of a calling process: its pid and its fd table (a typed lookup: EBADF for a wrong fd). */
export interface CallerTask {
  readonly pid: number;
  readonly fds: { get(fd: number, kind: never, type: never): OpFile };
}

/** Who issues a call: a process (by its token), the admin (hardware plane), anyone (process creation), the kernel itself. */
export type HostCaller = { kind: 'process'; pid: number } | { kind: 'admin' } | { kind: 'anyone' } | { kind: 'kernel' };

/** Who may issue an operation. */
export type Permit = 'process' | 'admin' | 'process-or-admin' | 'anyone' | 'kernel';

/** The fd argument of an operation and the file it must name (missing, foreign or of another kind: EBADF). */
export interface FdSpec<F extends OpFile> {
  arg: string;
  kind: string;
  type: abstract new (...args: never[]) => F;
}

/** What a handler gets: the kernel parts its kind needs, the transaction, the caller, its process and file. */
export interface OpCall<K, F, P = CallerTask> {
  readonly k: K;
  readonly tx: Tx;
  readonly caller: HostCaller;
  /** The calling process (EPERM for a caller that is none). */
  readonly proc: P;
  /** The file behind the op's fd argument (only for ops with `fd`). */
  readonly file: F;
}

export interface Op<K, A, R, F extends OpFile = never, P = CallerTask> {
  readonly name: HostOperation;
  readonly permit: Permit;
  /** True for state changes and instructions (journaled, in a transaction); reads are neither. */
  readonly journal: boolean;
  readonly fd?: FdSpec<F>;
  /** The argument that names the caller's own pid (a process may act only on itself: EPERM). */
  readonly self?: NoInfer<keyof A & string>;
  /** The journal row's object; `r` is undefined when the call failed. */
  readonly object?: (a: NoInfer<A>, r: NoInfer<R> | undefined, caller: HostCaller) => string | null;
  /** State a successful call commits with its row (a table row of the app). */
  readonly persist?: (a: NoInfer<A>, r: NoInfer<R>) => StateWrite[];
  /** What the journal records as arguments (default: the arguments themselves). */
  readonly args?: (a: NoInfer<A>) => unknown;
  /** What the journal records as the result (default: the result itself). */
  readonly result?: (r: NoInfer<R>) => unknown;
  readonly run: (c: OpCall<K, F, P>, a: A) => R;
}

/**
 * The row constructor of one object kind, whose handlers see the kernel as `K` (the parts that kind needs) and
 * the calling process as `P`: `const op = opsFor<Deps, Process>()`, then `op({...})` per row. It types rows and
 * gives every row the same shape (each field present, in one order): the dispatcher reads rows of every kind at the
 * same sites, and with one shape those reads stay monomorphic instead of a lookup per field.
 */
export function opsFor<K, P>(): <A, R, F extends OpFile = never>(def: Op<K, A, R, F, P>) => Op<K, A, R, F, P> {
  // Every field of Op, listed: a field added to Op and not here is a compile error (AllFields).
  return <A, R, F extends OpFile>(def: Op<K, A, R, F, P>): AllFields<Op<K, A, R, F, P>> => ({
    name: def.name,
    permit: def.permit,
    journal: def.journal,
    fd: def.fd,
    self: def.self,
    object: def.object,
    persist: def.persist,
    args: def.args,
    result: def.result,
    run: def.run,
  });
}

/** T with each optional field present (possibly undefined). */
type AllFields<T> = { [F in keyof Required<T>]: T[F] };

/** The fd an operation takes in argument `arg`, which must be a `kind` file of class `type`. */
export function fdArg<F extends OpFile>(arg: string, kind: string, type: abstract new (...args: never[]) => F): FdSpec<F> {
  return { arg, kind, type };
}

/** The journal actor of a caller. */
export function actorOf(caller: HostCaller): string {
  return caller.kind === 'process' ? `pid:${caller.pid}` : caller.kind === 'admin' ? 'admin' : 'kernel';
}

const AUTH_OF: Record<Permit, AuthKind> = {
  process: 'caller',
  admin: 'admin',
  'process-or-admin': 'caller-or-admin',
  anyone: 'none',
  kernel: 'admin',
};

/** The bearer-token rule of a route that issues an operation with this permit. */
export function authKindOf(permit: Permit): AuthKind {
  return AUTH_OF[permit];
}
