import { randomBytes } from 'node:crypto';
import { KernelError } from '@app/shared/errno';
import { memoryFiles, type MemFileBackend } from '@app/shared/memory/mem-file';
import { Tx } from '../fault-injection';
import { DEFAULT_LIMITS, type Limits } from '../limits/limits';
import { AddressSpace } from '../memory/address-space';
import { PAGE_SIZE } from '../memory/memory.constants';
import { PhysicalMemory } from '../memory/physical-memory';
import { FdTable, OpenFiles } from './fd-table';
import { Process } from './process';

/** Longest comm kept: Linux TASK_COMM_LEN is 16 including the NUL (include/linux/sched.h). */
export const COMM_MAX = 15;

/**
 * Exited processes the table keeps, newest last (state exited: ps shows them, as it shows zombies); an older one is
 * reaped. Its journal rows and its row in the process table's database stay: that is its history.
 */
export const EXITED_KEPT = 128;

/**
 * Every process the kernel has known since boot, by pid and by token: the running ones, and the EXITED_KEPT that
 * exited last (in state exited). Each new process gets its limits (limits/limits.ts): fds, memory; at most
 * PROCESS_LIMIT run per creator.
 */
export class ProcessTable {
  private readonly byPid = new Map<number, Process>();
  private readonly byToken = new Map<string, Process>();
  /** Running processes per creator. */
  private readonly perCreator = new Map<string, number>();
  /** Open files host-wide (FILE_MAX), shared by every fd table. */
  readonly files: OpenFiles;
  private nextPid: number;
  private readonly firstPid: number;
  /** The exited processes still kept, oldest first (exit reaps beyond EXITED_KEPT). */
  private readonly exitedOrder: number[] = [];

  constructor(
    private readonly memory: PhysicalMemory,
    firstPid: number,
    /** Where bearer tokens come from (random; a seeded source in deterministic mode). */
    private readonly newToken: () => string = () => randomBytes(24).toString('base64url'),
    private readonly limits: Limits = DEFAULT_LIMITS,
    /** What backs shared mappings (POSIX shared memory for the three-process stack). */
    private readonly memFiles: MemFileBackend = memoryFiles,
  ) {
    if (!Number.isInteger(firstPid) || firstPid < 1) throw new KernelError('EINVAL', `firstPid must be a positive integer`);
    this.nextPid = firstPid;
    this.firstPid = firstPid;
    this.files = new OpenFiles(limits.files);
  }

  /** fork+exec by `creator` (a process `pid:N`, `admin`, or `anyone`: every tokenless caller). */
  create(tx: Tx, comm: string, creator = 'anyone'): Process {
    if (typeof comm !== 'string' || comm.length === 0) throw new KernelError('EINVAL', `comm must be a non-empty string`);
    const running = this.perCreator.get(creator) ?? 0;
    if (running >= this.limits.processes) {
      throw new KernelError('EAGAIN', `${creator} already runs ${running} processes (PROCESS_LIMIT ${this.limits.processes})`);
    }
    const pid = this.nextPid;
    const mm = new AddressSpace(this.memory, {
      residentPages: Math.floor(this.limits.residentBytes / PAGE_SIZE),
      pinnedPages: Math.floor(this.limits.pinnedBytes / PAGE_SIZE),
    }, this.memFiles);
    const proc = new Process(pid, truncateComm(comm), this.newToken(), mm, new FdTable(pid, this.limits.fds, this.files), creator);
    tx.do(
      'process.create',
      () => {
        this.nextPid++;
        this.byPid.set(proc.pid, proc);
        this.byToken.set(proc.token, proc);
        this.perCreator.set(creator, running + 1);
      },
      () => {
        this.nextPid--;
        this.byPid.delete(proc.pid);
        this.byToken.delete(proc.token);
        this.perCreator.set(creator, running);
      },
    );
    return proc;
  }

  /** Running processes per creator (the admin view of PROCESS_LIMIT). */
  runningByCreator(): Record<string, number> {
    return Object.fromEntries([...this.perCreator].filter(([, n]) => n > 0).sort(([a], [b]) => a.localeCompare(b)));
  }

  /** Any known process, exited or not; ESRCH if never seen, or exited and reaped. */
  get(pid: number): Process {
    const proc = this.byPid.get(pid);
    if (!proc) throw new KernelError('ESRCH', this.reaped(pid) ? `process ${pid} has exited` : `no process ${pid}`);
    return proc;
  }

  /** A pid this boot handed out whose process has exited and been reaped (pids are never reused). */
  private reaped(pid: number): boolean {
    return Number.isInteger(pid) && pid >= this.firstPid && pid < this.nextPid && !this.byPid.has(pid);
  }

  /** A caller: must exist and still run (ESRCH). */
  running(pid: number): Process {
    const proc = this.byPid.get(pid);
    // Every process call's first lookup: the errors are get()'s and exited()'s, so this stays small enough to inline.
    return proc !== undefined && proc.state === 'running' ? proc : this.exited(pid);
  }

  private exited(pid: number): never {
    this.get(pid);
    throw new KernelError('ESRCH', `process ${pid} has exited`);
  }

  /** The running process a bearer token names. */
  pidForToken(token: string): number | undefined {
    const proc = this.byToken.get(token);
    return proc && proc.state === 'running' ? proc.pid : undefined;
  }

  /** The running processes and the exited ones still kept, by pid. */
  all(): Process[] {
    return [...this.byPid.values()];
  }

  /**
   * Process death: close every fd leaf-first (KVM → devices → ioasids), then free its memory, and reap the oldest
   * exited process beyond EXITED_KEPT. Idempotent, for a reaped process too.
   */
  exit(tx: Tx, pid: number, reason: string): void {
    if (this.reaped(pid)) return;
    const proc = this.get(pid);
    if (proc.state === 'exited') return;
    for (const fd of proc.fds.closeOrder()) proc.fds.close(tx, fd);
    const count = (d: number): void => void this.perCreator.set(proc.creator, (this.perCreator.get(proc.creator) ?? 0) + d);
    tx.do(
      'process.exit',
      () => {
        proc.state = 'exited';
        count(-1);
      },
      () => {
        proc.state = 'running';
        count(1);
      },
    );
    tx.emit({ kind: 'process-exit', pid, reason });
    tx.defer(() => {
      proc.mm.teardown();
      this.exitedOrder.push(pid);
      while (this.exitedOrder.length > EXITED_KEPT) this.reap(this.exitedOrder.shift() as number);
    });
  }

  /** Forgets an exited process (its token already names no running process). */
  private reap(pid: number): void {
    this.byToken.delete(this.get(pid).token);
    this.byPid.delete(pid);
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
