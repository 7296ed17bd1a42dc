import { randomBytes } from 'node:crypto';
import { KernelError } from '@app/shared/errno';
import { Tx } from '../fault-injection';
import { AddressSpace } from '../memory/address-space';
import { PhysicalMemory } from '../memory/physical-memory';
import { Process } from './process';

/** Longest comm kept: Linux TASK_COMM_LEN is 16 including the NUL (include/linux/sched.h). */
export const COMM_MAX = 15;

/** Every process the kernel has known, by pid (exited ones stay, in state exited) and by token. */
export class ProcessTable {
  private readonly byPid = new Map<number, Process>();
  private readonly byToken = new Map<string, Process>();
  private nextPid: number;

  constructor(
    private readonly memory: PhysicalMemory,
    firstPid: number,
    /** Where bearer tokens come from (random; a seeded source in deterministic mode). */
    private readonly newToken: () => string = () => randomBytes(24).toString('base64url'),
  ) {
    if (!Number.isInteger(firstPid) || firstPid < 1) throw new KernelError('EINVAL', `firstPid must be a positive integer`);
    this.nextPid = firstPid;
  }

  create(tx: Tx, comm: string): Process {
    if (typeof comm !== 'string' || comm.length === 0) throw new KernelError('EINVAL', `comm must be a non-empty string`);
    const proc = new Process(this.nextPid, truncateComm(comm), this.newToken(), new AddressSpace(this.memory));
    tx.do(
      'process.create',
      () => {
        this.nextPid++;
        this.byPid.set(proc.pid, proc);
        this.byToken.set(proc.token, proc);
      },
      () => {
        this.nextPid--;
        this.byPid.delete(proc.pid);
        this.byToken.delete(proc.token);
      },
    );
    return proc;
  }

  /** Any known process, exited or not; ESRCH if never seen. */
  get(pid: number): Process {
    const proc = this.byPid.get(pid);
    if (!proc) throw new KernelError('ESRCH', `no process ${pid}`);
    return proc;
  }

  /** A caller: must exist and still run (ESRCH). */
  running(pid: number): Process {
    const proc = this.get(pid);
    if (proc.state !== 'running') throw new KernelError('ESRCH', `process ${pid} has exited`);
    return proc;
  }

  /** The running process a bearer token names. */
  pidForToken(token: string): number | undefined {
    const proc = this.byToken.get(token);
    return proc && proc.state === 'running' ? proc.pid : undefined;
  }

  all(): Process[] {
    return [...this.byPid.values()];
  }

  /** Process death: close every fd leaf-first (KVM → devices → ioasids), then free its memory. Idempotent. */
  exit(tx: Tx, pid: number, reason: string): void {
    const proc = this.get(pid);
    if (proc.state === 'exited') return;
    for (const fd of proc.fds.closeOrder()) proc.fds.close(tx, fd);
    tx.do('process.exit', () => (proc.state = 'exited'), () => (proc.state = 'running'));
    tx.emit({ kind: 'process-exit', pid, reason });
    tx.defer(() => proc.mm.teardown());
  }
}

/** set_task_comm truncates silently (strscpy_pad into TASK_COMM_LEN bytes): keep the first 15 bytes of UTF-8. */
export function truncateComm(comm: string): string {
  const bytes = Buffer.from(comm, 'utf8');
  if (bytes.length <= COMM_MAX) return comm;
  // Cut on a character boundary so the name stays valid text (Linux would cut mid-sequence; JSON cannot carry that).
  let end = COMM_MAX;
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString('utf8');
}
