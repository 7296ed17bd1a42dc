// What each process uses of what the limits bound (limits/limits.ts): the admin view `GET /v1/hw/limits` and kernel-state.
import type { IoasidLayer } from '../ioasid/ioasid-layer';
import { PAGE_SIZE } from '../memory/memory.constants';
import type { Process } from '../process/process';
import type { ProcessTable } from '../process/process-table';
import type { Limits, ProcessUsage } from '../limits/limits';

export interface LimitsView {
  /** The limits in force (counts and bytes). */
  limits: Limits;
  /** Host-wide usage: open files (FILE_MAX) and running processes per creator (PROCESS_LIMIT). */
  host: { files: number; processes: Record<string, number> };
  /** Every running process (or the one asked for), with its usage. */
  processes: Array<{ pid: number; comm: string; usage: ProcessUsage }>;
}

export function usageOf(p: Process, ioasids: Pick<IoasidLayer, 'ownedBy'>): ProcessUsage {
  return { pasids: ioasids.ownedBy(p.pid), pinnedBytes: p.mm.pinnedPages * PAGE_SIZE, residentBytes: p.mm.residentPages * PAGE_SIZE, fds: p.fds.count };
}

/** The admin view; with `pid`, that process only (ESRCH if the kernel never knew it). */
export function limitsView(k: { procs: ProcessTable; ioasids: Pick<IoasidLayer, 'ownedBy'>; limits: Limits }, pid?: number): LimitsView {
  const procs = pid === undefined ? k.procs.all().filter((p) => p.state === 'running') : [k.procs.get(pid)];
  return {
    limits: { ...k.limits },
    host: { files: k.procs.files.count, processes: k.procs.runningByCreator() },
    processes: procs.map((p) => ({ pid: p.pid, comm: p.comm, usage: usageOf(p, k.ioasids) })),
  };
}
