import { KernelError } from '@app/shared/errno';
import { Tx } from '../fault-injection';

export type FdKind = 'ioasid' | 'device' | 'kvm-vm';

/** An open file: what an fd points to. release() is the file's ->release, run when the fd closes. */
export interface KernelFile {
  readonly kind: FdKind;
  release(tx: Tx): void;
}

/** Order in which process death closes fds: leaf-first (KVM mappings → device attachments → ioasids). */
export const CLOSE_ORDER: readonly FdKind[] = ['kvm-vm', 'device', 'ioasid'];

/** First fd handed out (0-2 are stdio, as in Linux). */
export const FIRST_FD = 3;
/** Bound on the fd numbers a call may name: Linux's default fs.nr_open, 1024 * 1024 (fs/file.c sysctl_nr_open). */
export const NR_OPEN = 1024 * 1024;

/** Open files on the whole host (fs.file-max counts them): every fd table of the kernel shares one. */
export class OpenFiles {
  count = 0;

  constructor(readonly max: number) {}
}

/**
 * One process's fd table: lowest free number from 3 (Linux alloc_fd), typed lookup (EBADF), at most `maxFds`
 * open (RLIMIT_NOFILE: EMFILE), within the host's open files (ENFILE).
 */
export class FdTable {
  private readonly files = new Map<number, KernelFile>();

  constructor(
    private readonly pid: number,
    private readonly maxFds: number = NR_OPEN,
    private readonly host: OpenFiles = new OpenFiles(Number.MAX_SAFE_INTEGER),
  ) {}

  /** Install the file make(fd) builds at the lowest free fd. */
  install<F extends KernelFile>(tx: Tx, make: (fd: number) => F): { fd: number; file: F } {
    if (this.files.size >= this.maxFds) throw new KernelError('EMFILE', `process ${this.pid} has ${this.files.size} open fds (FD_LIMIT ${this.maxFds})`);
    if (this.host.count >= this.host.max) throw new KernelError('ENFILE', `the host has ${this.host.count} open files (FILE_MAX ${this.host.max})`);
    let fd = FIRST_FD;
    while (this.files.has(fd)) fd++;
    const file = make(fd);
    tx.do(
      'fd.install',
      () => {
        this.files.set(fd, file);
        this.host.count++;
      },
      () => {
        this.files.delete(fd);
        this.host.count--;
      },
    );
    return { fd, file };
  }

  get count(): number {
    return this.files.size;
  }

  /** The file behind fd, which must be of `kind` (class `type`): missing or wrong kind → EBADF. */
  get<T extends KernelFile>(fd: number, kind: FdKind, type: abstract new (...args: never[]) => T): T {
    const file = this.files.get(fd);
    // The exact class first (a load and a compare); instanceof, generic for a type known only at run time and the
    // slow part of a lookup, only for a subclass. The errors are a call of their own: every call with an fd
    // looks one up, and a small get() is inlined into it.
    if (file === undefined || file.kind !== kind || (file.constructor !== type && !(file instanceof type))) this.badFd(fd, file, kind);
    return file as T; // an instance of type: its class, or (instanceof) a subclass
  }

  private badFd(fd: number, file: KernelFile | undefined, kind: FdKind): never {
    if (!file) throw new KernelError('EBADF', `fd ${fd} is not open in process ${this.pid}`);
    throw new KernelError('EBADF', `fd ${fd} of process ${this.pid} is a ${file.kind} fd, not ${kind}`);
  }

  /** close(fd): drop it from the table, then release the file. */
  close(tx: Tx, fd: number): void {
    const file = this.files.get(fd);
    if (!file) throw new KernelError('EBADF', `fd ${fd} is not open in process ${this.pid}`);
    tx.do(
      'fd.close',
      () => {
        this.files.delete(fd);
        this.host.count--;
      },
      () => {
        this.files.set(fd, file);
        this.host.count++;
      },
    );
    file.release(tx);
  }

  list(): { fd: number; kind: FdKind }[] {
    return [...this.files.entries()].sort(([a], [b]) => a - b).map(([fd, file]) => ({ fd, kind: file.kind }));
  }

  /** Every fd, in process-death order. */
  closeOrder(): number[] {
    return this.list()
      .sort((a, b) => CLOSE_ORDER.indexOf(a.kind) - CLOSE_ORDER.indexOf(b.kind) || a.fd - b.fd)
      .map((e) => e.fd);
  }
}
