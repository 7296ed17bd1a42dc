// invoke's refusals, one by one: the errno, the message that names the cause, and nothing changed. The checks
// keep their common answer inline and their refusals in calls of their own (so V8 inlines the hot path): each
// case here is a branch of those.
import { hwOps } from '../hw/hw.ops';
import { ioasidOps } from '../ioasid/ioasid.ops';
import { IoasidContext } from '../ioasid/ioasid-context';
import { cpuOps } from '../cpu/cpu.ops';
import { processOps } from '../process/process.ops';
import { refusalOf } from '@app/shared/errno.testing';
import { expectFails, newKernel, type TestKernel } from '../kernel.testing';
import { fdArg, type HostCaller, opsFor } from './op';

const ADMIN: HostCaller = { kind: 'admin' };
const ANYONE: HostCaller = { kind: 'anyone' };
const proc = (pid: number): HostCaller => ({ kind: 'process', pid });

describe('invoke: every refusal before the handler runs', () => {
  let k: TestKernel;
  let pid: number;
  let fd: number;

  beforeEach(() => {
    k = newKernel();
    pid = k.createProcess('tenant').pid;
    fd = k.openIoasid(pid);
  });

  it('refuses a caller the permit does not name: EACCES without a token, EPERM with the wrong one', () => {
    expect(refusalOf(() => k.call(ioasidOps.alloc, ANYONE, { fd }))).toEqual({ errno: 'EACCES', message: 'ioasid.alloc needs a bearer token' });
    expect(refusalOf(() => k.call(ioasidOps.alloc, ADMIN, { fd }))).toEqual({ errno: 'EPERM', message: 'ioasid.alloc is a process call: the admin token does not make one' });
    expect(refusalOf(() => k.call(hwOps.limits, proc(pid), {}))).toEqual({ errno: 'EPERM', message: 'hw.limits needs the admin token' });
    expect(refusalOf(() => k.call(processOps.get, ANYONE, { pid }))).toEqual({ errno: 'EACCES', message: 'process.get needs a bearer token' });
    for (const caller of [ANYONE, ADMIN]) expectFails(k, () => k.call(ioasidOps.alloc, caller, { fd }), caller.kind === 'anyone' ? 'EACCES' : 'EPERM');
  });

  it('lets every caller the permit names through: the process its own call, the admin and a process a shared one', () => {
    expect(k.call(ioasidOps.alloc, proc(pid), { fd }).ioasid).toBeGreaterThan(0);
    expect(k.call(processOps.get, ADMIN, { pid }).pid).toBe(pid);
    expect(k.call(processOps.get, proc(pid), { pid }).pid).toBe(pid);
    expect(k.call(hwOps.limits, ADMIN, {})).toBeDefined();
  });

  it('refuses a pid that never ran and one that has exited, each with ESRCH naming which', () => {
    expect(refusalOf(() => k.call(ioasidOps.alloc, proc(9999), { fd }))).toEqual({ errno: 'ESRCH', message: 'no process 9999' });
    const other = k.createProcess('gone').pid;
    k.killProcess(other, 'test');
    expect(refusalOf(() => k.call(ioasidOps.alloc, proc(other), { fd }))).toEqual({ errno: 'ESRCH', message: `process ${other} has exited` });
    expectFails(k, () => k.call(ioasidOps.alloc, proc(other), { fd }), 'ESRCH');
  });

  it('refuses a process acting on another pid (EPERM), and changes nothing', () => {
    const other = k.createProcess('other').pid;
    const wrmsr = { pid: other, msr: 'IA32_PASID', value: 0 };
    expect(refusalOf(() => k.call(cpuOps.wrmsr, proc(pid), wrmsr))).toEqual({ errno: 'EPERM', message: `process ${pid} cannot act on process ${other}` });
    expectFails(k, () => k.call(cpuOps.wrmsr, proc(pid), wrmsr), 'EPERM');
  });

  it("refuses an fd that is not open, or open as another kind, with EBADF naming the fd's kind", () => {
    expect(refusalOf(() => k.call(ioasidOps.alloc, proc(pid), { fd: fd + 100 }))).toEqual({ errno: 'EBADF', message: `fd ${fd + 100} is not open in process ${pid}` });
    const vm = k.createVm(pid);
    expect(refusalOf(() => k.call(ioasidOps.alloc, proc(pid), { fd: vm }))).toEqual({ errno: 'EBADF', message: `fd ${vm} of process ${pid} is a kvm-vm fd, not ioasid` });
    expectFails(k, () => k.call(ioasidOps.alloc, proc(pid), { fd: vm }), 'EBADF');
  });

  it('refuses an fd operation issued by a caller with no fd table (the admin) with EBADF, before its handler', () => {
    let ran = 0;
    // A row of the real shape (no such row exists: every fd row is a process call), to reach this branch of invoke.
    const adminFdRow = opsFor<unknown, unknown>()({
      name: 'ioasid.alloc',
      permit: 'process-or-admin',
      journal: false,
      fd: fdArg('fd', 'ioasid', IoasidContext),
      run: () => ++ran,
    });
    expect(refusalOf(() => k.call(adminFdRow, ADMIN, { fd }))).toEqual({ errno: 'EBADF', message: 'ioasid.alloc needs the fd of a calling process' });
    expect(ran).toBe(0);
    expect(k.call(adminFdRow, proc(pid), { fd })).toBe(1);
  });
});
