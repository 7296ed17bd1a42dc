// POSIX shared memory files across real processes: what one maps and writes, another maps by name and sees; an
// unlinked name maps no more; the files a dead host kernel left behind are swept.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { KernelError } from '../errno';
import { GuestRam } from './guest-ram';
import { memFileHandle, openMemHandle } from './mem-file';
import { openShm, shmFiles, sweepShmOrphans } from './shm-files';

const ROOT = join(__dirname, '../../../..');
/** Runs `code` in a fresh node process (this repository's modules resolvable), returns what it printed. */
const child = (code: string): string => execFileSync(process.execPath, ['-e', code], { cwd: ROOT, encoding: 'utf8' }).trim();
const shmLib = JSON.stringify(require.resolve('shm-typed-array'));
/** Prefix for a child that requires this library's TypeScript sources (transpiled on load, no type check). */
const TS = `const fs=require('fs'),ts=require('typescript');require.extensions['.ts']=(m,f)=>m._compile(ts.transpileModule(fs.readFileSync(f,'utf8'),{compilerOptions:{module:1,target:9,esModuleInterop:true}}).outputText,f);`;

describe('POSIX shared memory files', () => {
  it('another process maps the file by name: each sees the other’s stores', () => {
    const f = shmFiles.create(8192);
    try {
      expect(f.name).toMatch(/^\/ioasid-lab\.host\d+\.[0-9a-f]{32}$/);
      f.bytes.write('from the creator', 4096);
      const seen = child(`const s=require(${shmLib});const b=s.get(${JSON.stringify(f.name)},'Buffer');console.log(b.length, b.subarray(4096,4112).toString());b.write('from the other', 100);`);
      expect(seen).toBe('8192 from the creator');
      expect(f.bytes.subarray(100, 114).toString()).toBe('from the other');
    } finally {
      shmFiles.unlink(f.name);
    }
  });

  it('an unlinked name maps no more (ENOENT), while a mapping made before still works', () => {
    const f = shmFiles.create(4096);
    shmFiles.unlink(f.name);
    expect(existsSync(`/dev/shm${f.name}`)).toBe(false);
    expect(() => openShm(f.name)).toThrow(expect.objectContaining({ errno: 'ENOENT' }) as KernelError);
    f.bytes[0] = 7;
    expect(f.bytes[0]).toBe(7);
  });

  it('the handle (the name’s random part, no pid, no path) maps the same file; a bad or unknown handle is refused', () => {
    const f = shmFiles.create(4096);
    try {
      const handle = memFileHandle(f.name);
      expect(handle).toMatch(/^[0-9a-f]{32}$/);
      f.bytes.write('seen by handle', 0);
      expect(openMemHandle(handle).bytes.subarray(0, 14).toString()).toBe('seen by handle');
      const seen = child(`${TS}const m=require('./libs/shared/src/memory/mem-file');const b=m.openMemHandle(${JSON.stringify(handle)}).bytes;console.log(b.subarray(0,14).toString());`);
      expect(seen).toBe('seen by handle');
      expect(() => openMemHandle(`/dev/shm${f.name}`)).toThrow(expect.objectContaining({ errno: 'EINVAL' }) as KernelError);
      expect(() => openMemHandle('0'.repeat(32))).toThrow(expect.objectContaining({ errno: 'ENOENT' }) as KernelError);
    } finally {
      shmFiles.unlink(f.name);
    }
  });

  it('a process that exits unlinks the files it created and did not unlink', () => {
    const name = child(`${TS}const {shmFiles}=require('./libs/shared/src/memory/shm-files');const f=shmFiles.create(4096);console.log(fs.existsSync('/dev/shm'+f.name)?f.name:'missing');`);
    expect(name).toMatch(/^\/ioasid-lab\.host\d+\./);
    expect(existsSync(`/dev/shm${name}`)).toBe(false);
  });

  it('a name that is not ours is EINVAL before anything is opened', () => {
    expect(() => openShm('/etc-passwd')).toThrow(expect.objectContaining({ errno: 'EINVAL' }) as KernelError);
  });

  it('the files of a host kernel that died are swept; a live one’s stay', () => {
    const live = shmFiles.create(4096);
    try {
      // A process creates a file in our naming scheme under its own pid and dies without unlinking it.
      const name = child(`const s=require(${shmLib});const n='/ioasid-lab.host'+process.pid+'.'+'ab'.repeat(16);s.create(4096,'Buffer',n,'600');console.log(n);`);
      expect(existsSync(`/dev/shm${name}`)).toBe(true);
      expect(sweepShmOrphans()).toContain(name.slice(1));
      expect(existsSync(`/dev/shm${name}`)).toBe(false);
      expect(existsSync(`/dev/shm${live.name}`)).toBe(true);
    } finally {
      shmFiles.unlink(live.name);
    }
  });
});

describe('GuestRam', () => {
  it('copies in and out; an access past RAM is EFAULT and moves nothing', async () => {
    const ram = new GuestRam(Buffer.alloc(4096));
    ram.write(4090, Buffer.from('abcdef'));
    expect(ram.read(4090, 6).toString()).toBe('abcdef');
    await expect(ram.writeMemory(4091, Buffer.from('abcdef'))).rejects.toMatchObject({ errno: 'EFAULT' });
    await expect(ram.readMemory(-1, 2)).rejects.toMatchObject({ errno: 'EFAULT' });
    expect(ram.read(4090, 6).toString()).toBe('abcdef');
    // A read is a copy: changing it changes no RAM.
    ram.read(4090, 6).fill(0);
    expect(ram.read(4090, 1).toString()).toBe('a');
  });
});
