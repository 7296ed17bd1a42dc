import { KernelEvent } from '../kernel';
import { DSA0, DSA1, errnoOf, expectFails, newKernel, PAGE, vmmWithGpaSpace } from '../kernel.testing';
import { PASID_POOL_SIZE } from '../ioasid/ioasid.constants';
import { refusalOf } from '@app/shared/errno.testing';
import { EXITED_KEPT } from './process-table';

describe('processes and fds', () => {
  it('pids count up from firstPid; tokens identify running processes only', () => {
    const k = newKernel({ firstPid: 500 });
    const a = k.createProcess('a');
    const b = k.createProcess('b');
    expect([a.pid, b.pid]).toEqual([500, 501]);
    expect(k.pidForToken(a.token)).toBe(500);
    expect(k.pidForToken('nope')).toBeUndefined();
    expect(k.process(500)).toEqual({ pid: 500, comm: 'a', state: 'running', fds: [] });
    expect(errnoOf(() => k.process(42))).toBe('ESRCH');
    expect(errnoOf(() => k.createProcess(''))).toBe('EINVAL');
    k.killProcess(500, 'test');
    expect(k.pidForToken(a.token)).toBeUndefined();
    expect(k.process(500).state).toBe('exited');
  });

  it('a comm longer than 15 bytes is truncated like set_task_comm, not refused', () => {
    const k = newKernel();
    const long = k.createProcess('vmm/a-rather-long-vm-name');
    expect(k.process(long.pid).comm).toBe('vmm/a-rather-lo');
    expect(k.process(k.createProcess('exactly15bytes!').pid).comm).toBe('exactly15bytes!');
    // a multi-byte character straddling byte 15 is dropped whole
    expect(k.process(k.createProcess('abcdefghijklmn\u00e9x').pid).comm).toBe('abcdefghijklmn');
  });

  it('each process has its own fd table with the lowest free number from 3, across fd kinds', () => {
    const k = newKernel();
    const a = k.createProcess('a').pid;
    const b = k.createProcess('b').pid;
    expect(k.openIoasid(a)).toBe(3);
    expect(k.openDevice(a, DSA0)).toBe(4);
    expect(k.createVm(a)).toBe(5);
    expect(k.openIoasid(b)).toBe(3);
    k.closeFd(a, 4);
    expect(k.createVm(a)).toBe(4);
    expect(k.process(a).fds).toEqual([
      { fd: 3, kind: 'ioasid' },
      { fd: 4, kind: 'kvm-vm' },
      { fd: 5, kind: 'kvm-vm' },
    ]);
    expectFails(k, () => k.closeFd(b, 5), 'EBADF');
  });
});

describe('process death', () => {
  it('closes fds leaf-first (KVM mappings, then device routes, then ioasids) and leaks nothing', () => {
    const events: KernelEvent[] = [];
    const k = newKernel({ onEvent: (e) => events.push(e) });
    const idle = k.snapshot();
    const { pid, fd, gpa, hva } = vmmWithGpaSpace(k, 8);
    k.writeMemory(pid, hva, Buffer.alloc(8 * PAGE, 1));
    const vm = k.createVm(pid);
    k.addMemslot(pid, vm, { gpa: 0, size: 8 * PAGE, hva });
    const dev = k.openDevice(pid, DSA0);
    const dev1 = k.openDevice(pid, DSA1);
    k.allowIoasid(pid, dev, { ioasidFd: fd, ioasid: gpa, mode: 'rid' });
    const sva = k.alloc(pid, fd);
    k.bindPgtbl(pid, fd, sva, { kind: 'nested', parent: gpa, root: 0x1000 });
    k.allowIoasid(pid, dev, { ioasidFd: fd, ioasid: sva, mode: 'pasid' });
    k.allowIoasid(pid, dev1, { ioasidFd: fd, ioasid: sva, mode: 'pasid' });
    k.setPasidTranslation(pid, vm, true);
    k.mapPasid(pid, vm, { vpasid: 3, ioasidFd: fd, ioasid: sva });
    k.destroy(pid, fd, k.alloc(pid, fd)); // some churn

    const atDrain: unknown[] = [];
    k.drain = (bdf, ppasid) => {
      const info = k.pasidInfo(ppasid ?? gpa);
      atDrain.push({ bdf, ppasid, ioasidState: info.ioasidState, kvm: info.holders?.kvm });
    };
    k.killProcess(pid, 'lifeline dropped');

    // KVM mappings were gone before the first drain; ioasids were still live (not yet destroyed) during every drain
    expect(atDrain).toEqual([
      { bdf: DSA0, ppasid: sva, ioasidState: 'bound', kvm: [] },
      { bdf: DSA0, ppasid: null, ioasidState: 'bound', kvm: [] },
      { bdf: DSA1, ppasid: sva, ioasidState: 'bound', kvm: [] },
    ]);
    expect(k.process(pid)).toMatchObject({ state: 'exited', fds: [] });
    const after = k.snapshot();
    expect(after.pool).toEqual({ allocated: 0, parked: 0, free: PASID_POOL_SIZE });
    expect(after.pins).toEqual([]);
    expect(after.routes).toEqual([]);
    expect(after.allocatedFrames).toBe(0);
    expect(after.ioasids).toEqual([]);
    expect(after.devices).toEqual(idle.devices);
    expect(events.filter((e) => e.kind === 'process-exit')).toEqual([{ kind: 'process-exit', pid, reason: 'lifeline dropped' }]);
    // 3 went at its DESTROY; at death the nested child (2) is freed before the parent it pinned (1)
    expect(events.filter((e) => e.kind === 'ioasid-freed').map((e) => ('ppasid' in e ? e.ppasid : null))).toEqual([3, sva, gpa]);
  });

  it('is idempotent, and a dead process can make no more calls (ESRCH)', () => {
    const events: KernelEvent[] = [];
    const k = newKernel({ onEvent: (e) => events.push(e) });
    const { pid, fd } = vmmWithGpaSpace(k);
    k.killProcess(pid, 'first');
    k.killProcess(pid, 'second');
    expect(events.filter((e) => e.kind === 'process-exit')).toHaveLength(1);
    expect(errnoOf(() => k.alloc(pid, fd))).toBe('ESRCH');
    expect(errnoOf(() => k.mmap(pid, PAGE))).toBe('ESRCH');
    expect(errnoOf(() => k.openDevice(pid, DSA0))).toBe('ESRCH');
    expect(errnoOf(() => k.killProcess(9999, 'x'))).toBe('ESRCH');
  });

  it('keeps the EXITED_KEPT processes that exited last and reaps older ones: ESRCH "has exited" for both; killing a reaped one is ESRCH and changes nothing', () => {
    const k = newKernel({ firstPid: 100 });
    const survivor = k.createProcess('survivor').pid;
    // One at a time: a creator runs at most PROCESS_LIMIT at once.
    const exit = (k0: typeof k, name: string): number => {
      const pid = k0.createProcess(name).pid;
      k0.killProcess(pid, 'bye');
      return pid;
    };
    const pids = Array.from({ length: EXITED_KEPT + 2 }, (_, n) => exit(k, `p${n}`));
    const listed = k.snapshot().processes.map((p) => p.pid);
    // The two that exited first are reaped; the last EXITED_KEPT stay listed as exited, the survivor runs on.
    expect(listed).toEqual([survivor, ...pids.slice(2)]);
    expect(k.process(pids[2]).state).toBe('exited');
    for (const pid of pids.slice(0, 2)) {
      expect(refusalOf(() => k.process(pid))).toEqual({ errno: 'ESRCH', message: `process ${pid} has exited` });
      expect(refusalOf(() => k.mmap(pid, PAGE))).toEqual({ errno: 'ESRCH', message: `process ${pid} has exited` });
    }
    // A pid never handed out is no process at all.
    const next = pids[pids.length - 1] + 1;
    expect(refusalOf(() => k.process(next))).toEqual({ errno: 'ESRCH', message: `no process ${next}` });
    // Killing a reaped pid again is ESRCH, as kill(2) of a reaped pid is, and changes nothing (no second exit).
    const events: string[] = [];
    const k2 = newKernel({ onEvent: (e) => events.push(e.kind) });
    const many = Array.from({ length: EXITED_KEPT + 1 }, (_, n) => exit(k2, `q${n}`));
    expect(k2.snapshot().processes).toHaveLength(EXITED_KEPT);
    expectFails(k2, () => k2.killProcess(many[0], 'again'), 'ESRCH');
    expect(events.filter((e) => e === 'process-exit')).toHaveLength(EXITED_KEPT + 1);
  });

  it('one process dying does not touch another process\'s objects', () => {
    const k = newKernel();
    const a = vmmWithGpaSpace(k);
    const b = vmmWithGpaSpace(k);
    const dev = k.openDevice(b.pid, DSA0);
    k.allowIoasid(b.pid, dev, { ioasidFd: b.fd, ioasid: b.gpa, mode: 'rid' });
    k.killProcess(a.pid, 'bye');
    expect(k.info(b.pid, b.fd, b.gpa)).toMatchObject({ state: 'bound', refs: 2 });
    expect(k.pasidPool()).toMatchObject({ allocated: 1, parked: 0 });
    expect(k.snapshot().pins).toHaveLength(4);
  });
});
