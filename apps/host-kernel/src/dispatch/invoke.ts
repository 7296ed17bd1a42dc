// What every host call shares before its handler runs: the caller may issue the operation (EACCES/EPERM), the
// calling process is alive (ESRCH), acts only on itself where the op names a pid (EPERM), and its fd argument
// names an open file of the right kind (EBADF). Then the handler runs inside the caller's transaction.
import { KernelError } from '@app/shared/errno';
import { atomically, type FaultInjector, type Tx, type TxEvent } from '../fault-injection';
import type { KernelFile } from '../process/fd-table';
import type { Process } from '../process/process';
import type { ProcessTable } from '../process/process-table';
import type { HostCaller, Op, OpCall } from './op';

/** The part of the kernel every call needs. */
export interface DispatchKernel {
  readonly procs: ProcessTable;
  readonly faults?: FaultInjector;
}

function checkPermit(op: Op<never, never, unknown, KernelFile>, caller: HostCaller): void {
  const { permit } = op;
  if (permit === 'anyone' || caller.kind === 'kernel') return;
  if (caller.kind === 'anyone') throw new KernelError('EACCES', `${op.name} needs a bearer token`, 401);
  if (permit === 'kernel') throw new KernelError('EPERM', `${op.name} is the kernel's own`);
  if (permit === 'admin' && caller.kind !== 'admin') throw new KernelError('EPERM', `${op.name} needs the admin token`);
  if (permit === 'process' && caller.kind !== 'process') throw new KernelError('EPERM', `${op.name} is a process call: the admin token does not make one`);
}

/** Runs `op` for `caller` inside `tx`: the checks above, then the handler. */
export function invoke<K extends DispatchKernel, A, R, F extends KernelFile>(k: K, op: Op<K, A, R, F>, caller: HostCaller, args: A, tx: Tx): R {
  checkPermit(op as unknown as Op<never, never, unknown, KernelFile>, caller);
  let proc: Process | null = null;
  if (caller.kind === 'process') {
    proc = k.procs.running(caller.pid);
    if (op.self !== undefined) {
      const target = (args as Record<string, unknown>)[op.self];
      if (target !== caller.pid) throw new KernelError('EPERM', `process ${caller.pid} cannot act on process ${String(target)}`);
    }
  }
  let file: KernelFile | undefined;
  if (op.fd) {
    if (!proc) throw new KernelError('EBADF', `${op.name} needs the fd of a calling process`);
    file = proc.fds.get((args as Record<string, unknown>)[op.fd.arg] as number, op.fd.kind, op.fd.type);
  }
  const call: OpCall<K, F> = {
    k,
    tx,
    caller,
    get proc(): Process {
      if (!proc) throw new KernelError('EPERM', `${op.name} needs a calling process`);
      return proc;
    },
    file: file as F,
  };
  return op.run(call, args);
}

/** One call as its own transaction, no journal (unit tests, benchmarks): commit on return, events to `onEvent`. */
export function call<K extends DispatchKernel, A, R, F extends KernelFile>(k: K, op: Op<never, A, R, F>, caller: HostCaller, args: A, onEvent?: (e: TxEvent) => void): R {
  return atomically(k.faults, (tx) => invoke(k, op as unknown as Op<K, A, R, F>, caller, args, tx), onEvent);
}
