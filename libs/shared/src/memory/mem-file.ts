// Memory files: what backs a shared mapping of guest RAM (DESIGN §3: the VMM mmaps guest RAM; here the host kernel
// backs that mmap with a file, as QEMU backs guest RAM with a memfd it shares with vhost-user backends). The host
// kernel creates the file and hands its name to the owner only; the owner maps it and hands it to its guest; every
// holder then reads and writes the same bytes with plain loads and stores, no call per access.
//
// Two backends, one name space: POSIX shared memory (`/ioasid-lab.…`, a tmpfs file under /dev/shm: three processes,
// shm-files.ts) and process memory (`memfd:…`, one Buffer per file: the in-process stack, where every app is in one
// process, like every process of a machine seeing one /dev/shm).
import { randomBytes } from 'node:crypto';
import { KernelError } from '../errno';
import type { MemFile, MemFileBackend } from './mem-file.types';
import { openShm, openShmHandle, releaseShm, shmFiles } from './shm-files';

export type { MemFile, MemFileBackend } from './mem-file.types';

const MEMFD_PREFIX = 'memfd:';
const inProcess = new Map<string, Buffer>();

/** Files that live in this process (the in-process stack: every app of it shares the one registry). */
export const memoryFiles: MemFileBackend = {
  kind: 'memory',
  create(length: number): MemFile {
    const name = `${MEMFD_PREFIX}${randomBytes(16).toString('hex')}`;
    const bytes = Buffer.alloc(length);
    inProcess.set(name, bytes);
    return { name, bytes };
  },
  unlink(name: string): void {
    inProcess.delete(name);
  },
};

/** The backend named by a config value: `shm` (POSIX shared memory) or `memory` (this process only). */
export function memFileBackend(kind: 'shm' | 'memory'): MemFileBackend {
  return kind === 'shm' ? shmFiles : memoryFiles;
}

/** Maps the file `name` (the owner's or its guest's side); ENOENT when no such file exists (any more). */
export function openMemFile(name: string): MemFile {
  if (typeof name !== 'string') throw new KernelError('EINVAL', 'a memory file name is a string');
  if (name.startsWith(MEMFD_PREFIX)) {
    const bytes = inProcess.get(name);
    if (!bytes) throw new KernelError('ENOENT', 'no such memory file');
    return { name, bytes };
  }
  return openShm(name);
}

const HANDLE = /^[0-9a-f]{32}$/;

/** A file's handle: the random part of its name (128 bits), a capability that names no host path, pid or backend. */
export function memFileHandle(name: string): string {
  return name.slice(-32);
}

/** Maps the file of `handle` (the guest's side: it is handed the handle, never the host's name); EINVAL, ENOENT. */
export function openMemHandle(handle: string): MemFile {
  if (typeof handle !== 'string' || !HANDLE.test(handle)) throw new KernelError('EINVAL', 'a memory handle is 32 hex digits');
  return inProcess.has(`${MEMFD_PREFIX}${handle}`) ? openMemFile(`${MEMFD_PREFIX}${handle}`) : openShmHandle(handle);
}

/** This holder is done with the file (munmap): the mapping goes once nothing in this process uses it any more. */
export function releaseMemFile(name: string): void {
  if (!name.startsWith(MEMFD_PREFIX)) releaseShm(name);
}
