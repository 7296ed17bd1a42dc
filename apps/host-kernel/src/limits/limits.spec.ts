import { CompletionStatus } from '@app/shared/dsa/dsa.constants';
import { KernelError } from '@app/shared/errno';
import { hostSva } from '../data-plane.testing';
import { hwOps } from '../hw/hw.ops';
import type { KernelEvent } from '../kernel';
import { DSA0, DSA1, expectFails, newKernel, PAGE, type TestKernel } from '../kernel.testing';
import { DEFAULT_LIMITS, LIMITS, type Limits, type ProcessUsage } from './limits';
import type { LimitsView } from '../hw/limits-view';

const ADMIN = { kind: 'admin' } as const;
const MIB = 1024 * 1024;

function kernel(limits: Partial<Limits> = {}): TestKernel {
  return newKernel({ memoryMiB: 64, limits: { ...DEFAULT_LIMITS, ...limits } });
}

/** What the admin view says about one process's usage. */
function usage(k: TestKernel, pid: number): Partial<ProcessUsage> {
  const view: LimitsView = k.call(hwOps.limits, ADMIN, { pid });
  return view.processes.find((p) => p.pid === pid)?.usage ?? {};
}

describe('per-process limits (rlimit-like), each refused with the kernel errno and nothing changed', () => {
  it('PASIDs: a process may own PASID_LIMIT ioasids [4096 by default]; past it ENOSPC, while others still allocate', () => {
    const k = newKernel({ memoryMiB: 64 });
    const { pid } = k.createProcess('hog');
    const fd = k.openIoasid(pid);
    for (let i = 0; i < DEFAULT_LIMITS.pasids; i++) k.alloc(pid, fd);
    expectFails(k, () => k.alloc(pid, fd), 'ENOSPC');
    const other = k.createProcess('neighbour').pid;
    expect(k.alloc(other, k.openIoasid(other))).toBeGreaterThan(0);
    expect(usage(k, pid).pasids).toBe(DEFAULT_LIMITS.pasids);
    // A destroyed ioasid nothing holds is freed at once: its PASID no longer counts.
    k.destroy(pid, fd, k.list(pid, fd)[0].ioasid);
    expect(k.alloc(pid, fd)).toBeGreaterThan(0);
  });

  it('pinned memory: MAP past PIN_LIMIT pins nothing (ENOMEM); UNMAP gives the budget back', () => {
    const k = kernel({ pinnedBytes: 4 * PAGE });
    const { pid } = k.createProcess('pinner');
    const fd = k.openIoasid(pid);
    const id = k.alloc(pid, fd);
    k.bindPgtbl(pid, fd, id, { kind: 'iova' });
    const hva = k.mmap(pid, 8 * PAGE);
    k.map(pid, fd, id, { iova: 0, hva, length: 3 * PAGE, read: true, write: true });
    expectFails(k, () => k.map(pid, fd, id, { iova: 0x100000, hva: hva + 3 * PAGE, length: 2 * PAGE, read: true, write: true }), 'ENOMEM');
    k.map(pid, fd, id, { iova: 0x100000, hva: hva + 3 * PAGE, length: PAGE, read: true, write: true });
    expect(usage(k, pid).pinnedBytes).toBe(4 * PAGE);
    k.unmap(pid, fd, id, { all: true });
    expect(usage(k, pid).pinnedBytes).toBe(0);
    k.map(pid, fd, id, { iova: 0, hva, length: 4 * PAGE, read: true, write: true });
  });

  it('allocated memory: a write that would populate past MEM_LIMIT is ENOMEM and writes nothing; a page request past it is answered invalid', () => {
    const events: KernelEvent[] = [];
    const k = newKernel({ memoryMiB: 64, limits: { ...DEFAULT_LIMITS, residentBytes: 4 * PAGE }, engine: { paused: true }, onEvent: (e) => events.push(e) });
    const sva = hostSva(k, DSA0, 3); // three pages touched: the source and the completion record live there
    const extra = k.mmap(sva.pid, 4 * PAGE);
    expectFails(k, () => k.writeMemory(sva.pid, extra, Buffer.alloc(2 * PAGE, 2)), 'ENOMEM');
    expect(usage(k, sva.pid).residentBytes).toBe(3 * PAGE);
    expect(k.readMemory(sva.pid, extra, 2 * PAGE)).toEqual(Buffer.alloc(2 * PAGE));
    // The device writes through the process's mm: the fourth page is asked for and populated (handle_mm_fault),
    // the fifth would exceed the limit, so its page request is answered invalid and the descriptor faults.
    const dev = k.accelerators.accelerator(DSA0);
    const copy = (dst: number) => k.enqcmd(sva.pid, sva.dev, { op: 'memmove', src: sva.buf, dst, length: 8, completion: sva.buf + 2 * PAGE, blockOnFault: true });
    copy(extra);
    dev.step();
    dev.step();
    expect(k.readMemory(sva.pid, sva.buf + 2 * PAGE, 1)[0]).toBe(CompletionStatus.success);
    expect(usage(k, sva.pid).residentBytes).toBe(4 * PAGE);
    copy(extra + PAGE);
    dev.step();
    dev.step();
    expect(events.filter((e) => e.kind === 'page-response').map((e) => e.code)).toEqual(['success', 'invalid']);
    expect(k.readMemory(sva.pid, sva.buf + 2 * PAGE, 1)[0]).toBe(CompletionStatus.pageFault);
    expect(usage(k, sva.pid).residentBytes).toBe(4 * PAGE);
  });

  it('open fds: past FD_LIMIT EMFILE for the process; past FILE_MAX ENFILE for everyone; close gives them back', () => {
    const k = kernel({ fds: 2, files: 3 });
    const a = k.createProcess('a').pid;
    const b = k.createProcess('b').pid;
    const fds = [k.openIoasid(a), k.openIoasid(a)];
    expectFails(k, () => k.openIoasid(a), 'EMFILE');
    expectFails(k, () => k.openDevice(a, DSA1), 'EMFILE');
    k.openIoasid(b);
    expectFails(k, () => k.openIoasid(b), 'ENFILE');
    expect(usage(k, a).fds).toBe(2);
    k.closeFd(a, fds[0]);
    expect(k.openDevice(b, DSA1)).toBeGreaterThan(0);
  });

  it('processes: at most PROCESS_LIMIT running processes per creator (every tokenless creation shares one): EAGAIN', () => {
    const k = kernel({ processes: 2 });
    const first = k.createProcess('one').pid;
    k.createProcess('two');
    expectFails(k, () => k.createProcess('three'), 'EAGAIN');
    k.killProcess(first, 'test');
    expect(k.createProcess('three').pid).toBeGreaterThan(first);
    const view: LimitsView = k.call(hwOps.limits, ADMIN, {});
    expect(view.host.processes).toEqual({ anyone: 2 });
  });

  it('the admin view lists every running process with its usage against the limits, and kernel-state carries the same', () => {
    const k = kernel();
    const sva = hostSva(k, DSA0, 2); // both pages touched
    const view: LimitsView = k.call(hwOps.limits, ADMIN, {});
    expect(view.limits).toEqual(DEFAULT_LIMITS);
    expect(view.processes).toEqual([{ pid: sva.pid, comm: 'sva-app', usage: { pasids: 1, pinnedBytes: 0, residentBytes: 2 * PAGE, fds: 2 } }]);
    expect(k.snapshot().processes[0]).toMatchObject({ pid: sva.pid, usage: { pasids: 1, pinnedPages: 0, fds: 2 }, residentPages: 2 });
    expect(() => k.call(hwOps.limits, { kind: 'process', pid: sva.pid }, {})).toThrow(expect.objectContaining({ errno: 'EPERM' }));
    expect(() => k.call(hwOps.limits, ADMIN, { pid: 99_999 })).toThrow(expect.objectContaining({ errno: 'ESRCH' }));
  });

  it('README and docs/choices.md name every limit with its knob and default (kept true when a row changes)', () => {
    const { readFileSync } = jest.requireActual<typeof import('node:fs')>('node:fs');
    const { join } = jest.requireActual<typeof import('node:path')>('node:path');
    for (const doc of ['README.md', 'docs/choices.md']) {
      const text = readFileSync(join(__dirname, '../../../..', doc), 'utf8').replace(/\s+/g, ' ');
      for (const row of Object.values(LIMITS)) expect([doc, text.includes(`\`${row.env}\` [${row.default}]`)]).toEqual([doc, true]);
    }
  });

  it('every limit is a row with its knob, default and errno', () => {
    for (const [name, row] of Object.entries(LIMITS)) {
      expect([name, row.env]).toEqual([name, expect.stringMatching(/^[A-Z_]+$/)]);
      expect([name, DEFAULT_LIMITS[name as keyof Limits]]).toEqual([name, row.default * (row.unit === 'MiB' ? MIB : 1)]);
      expect(() => {
        throw new KernelError(row.errno, name);
      }).toThrow(KernelError);
    }
  });
});
