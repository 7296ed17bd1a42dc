// POSIX shared memory files (shm_open + ftruncate + mmap MAP_SHARED, a tmpfs file under /dev/shm: what a memfd is
// to QEMU) through shm-typed-array, a native binding built from source by node-gyp at install. Names are
// `/ioasid-lab.host<os pid>.<128 random bits>`: the os pid lets a host kernel that restarts after a crash remove what
// a dead one left behind (sweepShmOrphans), the random part makes the name a capability. The random part alone is
// the file's handle: what a VMM hands its guest (openShmHandle), so no host pid or path reaches the guest's API.
//
// The binding's mapping goes away when its Buffer is garbage collected (never while anything holds it or a view of
// it): nothing here unmaps by hand, so no access can ever touch an unmapped page. It cannot map one name twice in
// one process (it would keep one record for both), so this process keeps one mapping per name.
import { readdirSync, statfsSync, unlinkSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { KernelError } from '../errno';
import type { MemFile, MemFileBackend } from './mem-file.types';

type ShmBinding = typeof import('shm-typed-array');

const SHM_DIR = '/dev/shm';
const PREFIX = 'ioasid-lab.host';
const NAME = /^\/ioasid-lab\.host(\d+)\.[0-9a-f]{32}$/;
const mapped = new Map<string, Buffer>();
/** Files this process created and has not unlinked: an exit (a host kernel's shutdown) unlinks them. */
const owned = new Set<string>();
let unlinkAtExit = false;
let binding: ShmBinding | null = null;

/** Loaded on first use, so a tool that never maps guest RAM never loads the native module. */
function shm(): ShmBinding {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  binding ??= require('shm-typed-array') as ShmBinding;
  return binding;
}

export const shmFiles: MemFileBackend = {
  kind: 'shm',
  create(length: number): MemFile {
    const free = freeBytes();
    // tmpfs allocates pages on first touch: a file larger than what is left would SIGBUS its writer later.
    if (free !== null && free < length) throw new KernelError('ENOMEM', `${SHM_DIR} has ${free} bytes free, a ${length}-byte file needs more`);
    const name = `/${PREFIX}${process.pid}.${randomBytes(16).toString('hex')}`;
    let bytes: Buffer | null;
    try {
      bytes = shm().create(length, 'Buffer', name, '600');
    } catch (err) {
      throw new KernelError('ENOMEM', `shm_open of a ${length}-byte file failed: ${(err as Error).message}`);
    }
    if (!bytes) throw new KernelError('EEXIST', 'a memory file of that name exists');
    mapped.set(name, bytes);
    owned.add(name);
    if (!unlinkAtExit) {
      unlinkAtExit = true;
      // A shutdown is the machine's power-off: its RAM files go. A kill -9 leaves them to the next boot's sweep.
      process.once('exit', () => {
        for (const n of owned) unlinkQuietly(n);
      });
    }
    return { name, bytes };
  },
  unlink(name: string): void {
    mapped.delete(name);
    owned.delete(name);
    unlinkQuietly(name);
  },
};

/** Maps an existing file by name. */
export function openShm(name: string): MemFile {
  if (!NAME.test(name)) throw new KernelError('EINVAL', 'not a memory file name');
  const have = mapped.get(name);
  if (have) return { name, bytes: have };
  let bytes: Buffer | null;
  try {
    bytes = shm().get(name, 'Buffer');
  } catch (err) {
    throw new KernelError('EIO', `mapping the memory file failed: ${(err as Error).message}`);
  }
  if (!bytes) throw new KernelError('ENOENT', 'no such memory file');
  mapped.set(name, bytes);
  return { name, bytes };
}

/** Maps the file whose random part is `handle` (what a guest is handed: no host pid, no path); ENOENT if none. */
export function openShmHandle(handle: string): MemFile {
  let names: string[];
  try {
    names = readdirSync(SHM_DIR);
  } catch {
    names = [];
  }
  const file = names.find((n) => n.startsWith(PREFIX) && n.endsWith(`.${handle}`) && NAME.test(`/${n}`));
  if (!file) throw new KernelError('ENOENT', 'no such memory file');
  return openShm(`/${file}`);
}

/** This process is done with `name`: its mapping goes once the last Buffer view of it is collected. */
export function releaseShm(name: string): void {
  mapped.delete(name);
}

/** Files of host kernels that are no longer running (a crash leaves its files behind; a reboot removes them). */
export function sweepShmOrphans(): string[] {
  let names: string[];
  try {
    names = readdirSync(SHM_DIR);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const file of names) {
    const m = NAME.exec(`/${file}`);
    if (!m || alive(Number(m[1]))) continue;
    try {
      unlinkSync(`${SHM_DIR}/${file}`);
      removed.push(file);
    } catch {
      // someone else removed it first
    }
  }
  return removed;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function freeBytes(): number | null {
  try {
    const s = statfsSync(SHM_DIR);
    return s.bavail * s.bsize;
  } catch {
    return null;
  }
}

function unlinkQuietly(name: string): void {
  try {
    unlinkSync(`${SHM_DIR}${name}`);
  } catch {
    // already gone: the name is free either way
  }
}
