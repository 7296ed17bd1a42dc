// Per-process resource limits of the host kernel, like rlimits (getrlimit(2)): one row per limit with its knob
// (environment variable), default, unit and the errno a call past it gets. The kernel's parts check them where
// the resource is taken (the PASID pool, the fd table, an address space's pins and frames, the process table),
// inside the call's transaction, so a refused call changes nothing. `GET /v1/hw/limits` (admin) shows each
// running process's usage against them.
import type { Errno } from '@app/shared/errno';

export interface LimitRow {
  /** The environment variable that sets it. */
  env: string;
  /** The default, in `unit`. */
  default: number;
  unit: 'count' | 'MiB';
  errno: Errno;
  /** Whose usage counts: one process, one creator of processes, the whole host. */
  scope: 'process' | 'creator' | 'host';
  /** What it models. */
  like: string;
}

export const LIMITS = {
  /** ioasids (host PASIDs) a process owns, allocated or parked (a parked one still holds its PASID). */
  pasids: { env: 'PASID_LIMIT', default: 4096, unit: 'count', errno: 'ENOSPC', scope: 'process', like: 'the ioasid_set quota of the /dev/ioasid proposal (misc cgroup "ioasids")' },
  /** Memory pinned for DMA by IOASID_MAP_DMA. */
  pinnedBytes: { env: 'PIN_LIMIT_MIB', default: 1024, unit: 'MiB', errno: 'ENOMEM', scope: 'process', like: 'RLIMIT_MEMLOCK, which iommufd charges pinned pages to' },
  /** Memory a process has populated (frames allocated on first touch, by the CPU or an SVA device). */
  residentBytes: { env: 'MEM_LIMIT_MIB', default: 1024, unit: 'MiB', errno: 'ENOMEM', scope: 'process', like: 'a memory cgroup memory.max' },
  /** Open fds of one process. */
  fds: { env: 'FD_LIMIT', default: 1024, unit: 'count', errno: 'EMFILE', scope: 'process', like: 'RLIMIT_NOFILE (soft default 1024)' },
  /** Open files on the whole host. */
  files: { env: 'FILE_MAX', default: 65536, unit: 'count', errno: 'ENFILE', scope: 'host', like: 'fs.file-max' },
  /** Running processes one creator made; every process created without a credential has the same creator. */
  processes: { env: 'PROCESS_LIMIT', default: 128, unit: 'count', errno: 'EAGAIN', scope: 'creator', like: 'RLIMIT_NPROC (fork answers EAGAIN)' },
} as const satisfies Record<string, LimitRow>;

export type LimitName = keyof typeof LIMITS;

/** The limits in force, in counts and bytes. */
export type Limits = Record<LimitName, number>;

const MIB = 1024 * 1024;

function inUnits(row: LimitRow, value: number): number {
  return row.unit === 'MiB' ? value * MIB : value;
}

export const DEFAULT_LIMITS: Limits = Object.fromEntries(Object.entries(LIMITS).map(([name, row]) => [name, inUnits(row, row.default)])) as Limits;

/** The limits an environment sets (`read` parses one variable, as the app's config does, or gives the default). */
export function limitsFrom(read: (env: string, fallback: number, max: number) => number): Limits {
  const out = {} as Limits;
  for (const [name, row] of Object.entries(LIMITS) as Array<[LimitName, LimitRow]>) {
    out[name] = inUnits(row, read(row.env, row.default, row.unit === 'MiB' ? 1 << 20 : 1 << 24));
  }
  return out;
}

/** One process's usage of what the limits bound (the admin view, in bytes; kernel-state keeps pages). */
export interface ProcessUsage {
  pasids: number;
  pinnedBytes: number;
  residentBytes: number;
  fds: number;
}
