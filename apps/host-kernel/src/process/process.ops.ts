// Process calls (DESIGN §5 host-kernel table): create, exit, memory, close(fd). Instructions a process
// executes (WRMSR, ENQCMD) are in cpu/cpu.ops.ts.
import { KernelError } from '@app/shared/errno';
import { type OpCall, opsFor } from '../dispatch/op';
import { ProcessEntity } from '../persistence/process.entity';
import type { FdKind, KernelFile } from './fd-table';
import type { Process, ProcessState } from './process';
import type { ProcessTable } from './process-table';

interface Deps {
  procs: ProcessTable;
}

const op = opsFor<Deps, Process>();
type C<F extends KernelFile = never> = OpCall<Deps, F, Process>;

export interface ProcessInfo {
  pid: number;
  comm: string;
  state: ProcessState;
  fds: { fd: number; kind: FdKind }[];
}

export const processOps = {
  /** fork+exec: a new process; its token authenticates every later call it makes (never journaled). */
  create: op({
    name: 'process.create',
    permit: 'anyone',
    journal: true,
    run: ({ k, tx, caller }: C, a: { comm: string }) => {
      const p = k.procs.create(tx, a.comm, caller.kind === 'process' ? `pid:${caller.pid}` : caller.kind);
      return { pid: p.pid, token: p.token, comm: p.comm };
    },
    object: (_a, r) => (r ? `process:${r.pid}` : null),
    result: (r) => ({ pid: r.pid }),
    persist: (_a, r) => [{ entity: ProcessEntity, insert: { pid: r.pid, comm: r.comm, state: 'running', createdMs: Date.now(), exitedMs: null, exitReason: null } }],
  }),

  get: op({
    name: 'process.get',
    permit: 'process-or-admin',
    journal: false,
    run: ({ k }: C, a: { pid: number }): ProcessInfo => {
      const p = k.procs.get(a.pid);
      return { pid: p.pid, comm: p.comm, state: p.state, fds: p.fds.list() };
    },
    self: 'pid',
  }),

  /** Process death: every fd closes leaf-first (KVM mappings, device attachments, ioasids), then its memory goes. */
  exit: op({
    name: 'process.exit',
    permit: 'process-or-admin',
    journal: true,
    run: ({ k, tx, caller }: C, a: { pid: number; reason?: string }) => {
      k.procs.get(a.pid);
      k.procs.exit(tx, a.pid, a.reason ?? (caller.kind === 'admin' ? 'killed by admin' : 'exit'));
    },
    object: (a) => `process:${a.pid}`,
    self: 'pid',
  }),

  /**
   * Anonymous read-write mapping; the hva is page aligned. `shared`: backed by a new memory file (a memfd), populated,
   * whose name only this answer carries, to the owner: it is a capability, never journaled.
   */
  mmap: op({
    name: 'mm.mmap',
    permit: 'process',
    journal: true,
    run: ({ proc, tx }: C, a: { pid: number; length: number; shared?: boolean }): { hva: number; file?: string } => {
      if (a.shared !== undefined && typeof a.shared !== 'boolean') throw new KernelError('EINVAL', `shared must be a boolean`);
      if (!a.shared) return { hva: proc.mm.mmap(tx, a.length) };
      const m = proc.mm.mmapShared(tx, a.length);
      return { hva: m.hva, file: m.file.name };
    },
    object: (_a, r) => (r ? `hva:${r.hva}` : null),
    result: (r) => ({ hva: r.hva }),
    self: 'pid',
  }),

  /** Writes the caller's memory; an unmapped byte anywhere in the range is EFAULT and nothing is written. */
  write: op({
    name: 'mm.write',
    permit: 'process',
    journal: true,
    run: ({ proc, tx }: C, a: { pid: number; hva: number; data: Buffer }) => proc.mm.write(tx, a.hva, a.data),
    args: (a) => ({ hva: a.hva, length: a.data.length }),
    self: 'pid',
  }),

  read: op({
    name: 'mm.read',
    permit: 'process',
    journal: false,
    run: ({ proc }: C, a: { pid: number; hva: number; length: number }) => proc.mm.read(a.hva, a.length),
    self: 'pid',
  }),

  /** close(fd): KVM mappings, device attachments or ioasids behind it are released leaf first. */
  close: op({
    name: 'fd.close',
    permit: 'process',
    journal: true,
    run: ({ proc, tx }: C, a: { fd: number }) => {
      if (!Number.isSafeInteger(a.fd)) throw new KernelError('EBADF', `fd ${a.fd} is not a file descriptor`);
      proc.fds.close(tx, a.fd);
    },
    object: (a, _r, caller) => (caller.kind === 'process' ? `fd:${caller.pid}/${a.fd}` : null),
  }),
};
