import type { DataSource } from 'typeorm';
import { createDataSource } from '@app/shared/db';
import { KernelError } from '@app/shared/errno';
import { Journal } from '@app/shared/journal/journal';
import { PROCESS_MIGRATIONS, ProcessEntity } from './persistence/process.entity';
import { FaultInjector, Tx } from './fault-injection';
import { DSA0, DSA1, newKernel, PAGE, vmmWithGpaSpace, type TestKernel } from './kernel.testing';
import { IA32_PASID_VALID } from '@app/shared/x86/msr.constants';

/** A VMM with a GPA ioasid on DSA0's RID, a nested SVA ioasid on DSA0/DSA1 PASID routes, mapped in KVM as vPASID 9. */
interface World {
  pid: number;
  fd: number;
  gpa: number;
  sva: number;
  hva: number;
  vm: number;
  dev0: number;
  dev1: number;
  /** an hva a flow's prep mapped */
  extra?: number;
  /** a fault queue a flow's prep made */
  queue?: number;
}

function world(k: TestKernel): World {
  const { pid, fd, gpa, hva } = vmmWithGpaSpace(k, 4);
  const vm = k.createVm(pid);
  k.addMemslot(pid, vm, { gpa: 0, size: 4 * PAGE, hva });
  k.createVcpu(pid, vm);
  const dev0 = k.openDevice(pid, DSA0);
  const dev1 = k.openDevice(pid, DSA1);
  k.allowIoasid(pid, dev0, { ioasidFd: fd, ioasid: gpa, mode: 'rid' });
  const sva = k.alloc(pid, fd);
  k.bindPgtbl(pid, fd, sva, { kind: 'nested', parent: gpa, root: 0x1000 });
  k.allowIoasid(pid, dev0, { ioasidFd: fd, ioasid: sva, mode: 'pasid' });
  k.allowIoasid(pid, dev1, { ioasidFd: fd, ioasid: sva, mode: 'pasid' });
  k.setPasidTranslation(pid, vm, true);
  k.mapPasid(pid, vm, { vpasid: 9, ioasidFd: fd, ioasid: sva });
  return { pid, fd, gpa, sva, hva, vm, dev0, dev1 };
}

interface Flow {
  name: string;
  op(k: TestKernel, w: World): void;
  /** optional extra setup after world() */
  prep?(k: TestKernel, w: World): void;
}

const mapArgs = (w: World) => ({ iova: 0x100000, hva: w.hva, length: 4 * PAGE, read: true, write: true });

/**
 * A fault queue on the world's fd, a pass-through nested ioasid (3) bound with it on DSA1, and one page request
 * group waiting in it: a block-on-fault copy by the process itself (IA32_PASID = 3) to a GPA the parent leaves
 * unmapped, run by one engine step (the engines are stalled).
 */
function pendingGroup(k: TestKernel, w: World): void {
  w.queue = k.createFaultQueue(w.pid, w.fd);
  const p = k.alloc(w.pid, w.fd);
  k.bindPgtbl(w.pid, w.fd, p, { kind: 'nested', parent: w.gpa, faultQueue: w.queue });
  k.allowIoasid(w.pid, w.dev1, { ioasidFd: w.fd, ioasid: p, mode: 'pasid' });
  k.wrmsr(w.pid, 'IA32_PASID', (IA32_PASID_VALID | p) >>> 0);
  k.enqcmd(w.pid, w.dev1, { op: 'memmove', src: 0, dst: 0x80000, length: 64, completion: 64, blockOnFault: true });
  k.accelerators.accelerator(DSA1).step();
}

const FLOWS: Flow[] = [
  { name: 'createProcess', op: (k) => void k.createProcess('new') },
  { name: 'mmap', op: (k, w) => void k.mmap(w.pid, 3 * PAGE) },
  {
    name: 'writeMemory (faults pages in)',
    prep: (k, w) => void (w.extra = k.mmap(w.pid, 3 * PAGE)),
    op: (k, w) => k.writeMemory(w.pid, (w.extra as number) + 8, Buffer.alloc(2 * PAGE, 7)),
  },
  { name: 'openIoasid', op: (k, w) => void k.openIoasid(w.pid) },
  { name: 'alloc', op: (k, w) => void k.alloc(w.pid, w.fd) },
  { name: 'bind iova', prep: (k, w) => void k.alloc(w.pid, w.fd), op: (k, w) => k.bindPgtbl(w.pid, w.fd, 3, { kind: 'iova' }) },
  { name: 'bind mm', prep: (k, w) => void k.alloc(w.pid, w.fd), op: (k, w) => k.bindPgtbl(w.pid, w.fd, 3, { kind: 'mm' }) },
  { name: 'bind nested (pins the parent)', prep: (k, w) => void k.alloc(w.pid, w.fd), op: (k, w) => k.bindPgtbl(w.pid, w.fd, 3, { kind: 'nested', parent: w.gpa }) },
  { name: 'map (pins frames)', op: (k, w) => void k.map(w.pid, w.fd, w.gpa, mapArgs(w)) },
  {
    name: 'unmap of several areas',
    prep: (k, w) => {
      k.map(w.pid, w.fd, w.gpa, mapArgs(w));
      k.map(w.pid, w.fd, w.gpa, { ...mapArgs(w), iova: 0x200000 });
    },
    op: (k, w) => void k.unmap(w.pid, w.fd, w.gpa, { iova: 0x100000, length: 0x200000 }),
  },
  { name: 'unmap all', op: (k, w) => void k.unmap(w.pid, w.fd, w.gpa, { all: true }) },
  { name: 'openDevice', prep: (k, w) => k.closeFd(w.pid, w.dev1), op: (k, w) => void k.openDevice(w.pid, DSA1) },
  { name: 'allow rid', op: (k, w) => k.allowIoasid(w.pid, w.dev1, { ioasidFd: w.fd, ioasid: w.gpa, mode: 'rid' }) },
  { name: 'allow pasid', op: (k, w) => k.allowIoasid(w.pid, w.dev0, { ioasidFd: w.fd, ioasid: w.gpa, mode: 'pasid' }) },
  { name: 'disallow', op: (k, w) => void k.disallowIoasid(w.pid, w.dev1, { ioasidFd: w.fd, ioasid: w.sva }) },
  {
    name: 'disallow of a parked ioasid (frees it and unpins its parent)',
    prep: (k, w) => {
      k.unmapPasid(w.pid, w.vm, 9);
      k.disallowIoasid(w.pid, w.dev1, { ioasidFd: w.fd, ioasid: w.sva });
      k.destroy(w.pid, w.fd, w.sva);
      k.disallowIoasid(w.pid, w.dev0, { ioasidFd: w.fd, ioasid: w.gpa });
      k.destroy(w.pid, w.fd, w.gpa);
    },
    op: (k, w) => void k.disallowIoasid(w.pid, w.dev0, { ioasidFd: w.fd, ioasid: w.sva }),
  },
  { name: 'destroy (parks: device and KVM still hold it)', op: (k, w) => k.destroy(w.pid, w.fd, w.sva) },
  { name: 'destroy (frees at once)', prep: (k, w) => void k.alloc(w.pid, w.fd), op: (k, w) => k.destroy(w.pid, w.fd, 3) },
  { name: 'create a fault queue', op: (k, w) => void k.createFaultQueue(w.pid, w.fd) },
  { name: 'destroy a fault queue', prep: (k, w) => void (w.queue = k.createFaultQueue(w.pid, w.fd)), op: (k, w) => k.destroyFaultQueue(w.pid, w.fd, w.queue as number) },
  {
    name: 'bind nested with a fault queue (takes a user of it)',
    prep: (k, w) => {
      w.queue = k.createFaultQueue(w.pid, w.fd);
      k.alloc(w.pid, w.fd);
    },
    op: (k, w) => k.bindPgtbl(w.pid, w.fd, 3, { kind: 'nested', parent: w.gpa, faultQueue: w.queue }),
  },
  { name: 'read a fault queue (assigns cookies)', prep: pendingGroup, op: (k, w) => void k.readFaultGroups(w.pid, w.fd, w.queue as number) },
  {
    name: 'answer a page request group',
    prep: (k, w) => {
      pendingGroup(k, w);
      k.readFaultGroups(w.pid, w.fd, w.queue as number);
    },
    op: (k, w) => k.respondFault(w.pid, w.fd, w.queue as number, 1, 'invalid'),
  },
  {
    name: 'close the ioasid fd with a fault queue a nested table uses (table parked first, then the queue released)',
    prep: (k, w) => {
      w.queue = k.createFaultQueue(w.pid, w.fd);
      k.bindPgtbl(w.pid, w.fd, k.alloc(w.pid, w.fd), { kind: 'nested', parent: w.gpa, faultQueue: w.queue });
    },
    op: (k, w) => k.closeFd(w.pid, w.fd),
  },
  { name: 'createVm', op: (k, w) => void k.createVm(w.pid) },
  { name: 'addMemslot', op: (k, w) => k.addMemslot(w.pid, w.vm, { gpa: 0x100000, size: 2 * PAGE, hva: w.hva }) },
  { name: 'createVcpu', op: (k, w) => void k.createVcpu(w.pid, w.vm) },
  {
    name: 'writeGuestMemory (across memslots, faults pages in)',
    prep: (k, w) => k.addMemslot(w.pid, w.vm, { gpa: 4 * PAGE, size: 4 * PAGE, hva: k.mmap(w.pid, 4 * PAGE) }),
    op: (k, w) => k.writeGuestMemory(w.pid, w.vm, 4 * PAGE - 4, Buffer.alloc(PAGE + 8, 3)),
  },
  { name: 'vcpuWrmsr', op: (k, w) => k.vcpuWrmsr(w.pid, w.vm, 0, 'IA32_PASID', 0x8000_0009) },
  { name: 'mapPasid', op: (k, w) => k.mapPasid(w.pid, w.vm, { vpasid: 10, ioasidFd: w.fd, ioasid: w.gpa }) },
  { name: 'unmapPasid', op: (k, w) => k.unmapPasid(w.pid, w.vm, 9) },
  { name: 'close the ioasid fd', op: (k, w) => k.closeFd(w.pid, w.fd) },
  { name: 'close a device fd', op: (k, w) => k.closeFd(w.pid, w.dev0) },
  { name: 'close the VM fd', op: (k, w) => k.closeFd(w.pid, w.vm) },
  { name: 'process death', op: (k, w) => k.killProcess(w.pid, 'fail_nth') },
];

/** What every ioasid fd lists (its own live ioasids, from the fd's list): a failed call must leave each as it was. */
function fdLists(k: TestKernel): Array<{ pid: number; fd: number; ioasids: number[] }> {
  return k.snapshot().processes.flatMap((p) =>
    p.state === 'running' ? p.fds.filter((f) => f.kind === 'ioasid').map(({ fd }) => ({ pid: p.pid, fd, ioasids: k.list(p.pid, fd).map((i) => i.ioasid) })) : [],
  );
}

/**
 * iommufd's fail_nth: fail the 1st, 2nd, 3rd… internal step of the call until a run completes. After
 * every failed run the kernel must be exactly as before the call; the run that completes must end in
 * the same state as on a kernel that never saw a fault (so failed runs consumed no id of any kind).
 * Every call goes through the journaling dispatcher, so the append of its journal row is a step too, the
 * last one: failing it answers EIO, journals the refusal, and changes nothing (DESIGN §6).
 */
describe('fail_nth: every mutating call is all-or-nothing, its journal row included', () => {
  let ds: DataSource;
  beforeEach(async () => {
    ds = createDataSource({ path: ':memory:', entities: [ProcessEntity], migrations: PROCESS_MIGRATIONS });
    await ds.initialize();
  });
  afterEach(() => ds.destroy());

  // Engines stalled: a flow's device work runs only when its prep steps it (no tick runs between the two kernels).
  it.each(FLOWS.map((f) => [f.name, f] as const))('%s', async (_name, flow) => {
    const reference = newKernel({ engine: { paused: true } });
    const rw = world(reference);
    flow.prep?.(reference, rw);
    flow.op(reference, rw);

    const faults = new FaultInjector();
    const journal = new Journal(ds, 'host-kernel');
    const k = newKernel({ faults, journal, engine: { paused: true } });
    const w = world(k);
    flow.prep?.(k, w);
    const steps: string[] = [];
    for (let nth = 1; ; nth++) {
      const before = k.snapshot();
      const listsBefore = fdLists(k);
      const rowsBefore = (await journal.events({ limit: 10_000 })).length;
      faults.arm(nth);
      let error: unknown;
      try {
        flow.op(k, w);
      } catch (err) {
        error = err;
      }
      faults.disarm();
      if (faults.fired === null) {
        expect(error).toBeUndefined();
        break;
      }
      steps.push(faults.fired);
      expect(error).toBeInstanceOf(KernelError);
      expect((error as KernelError).errno).toBe(faults.fired === 'journal.append' ? 'EIO' : 'ENOMEM');
      expect(k.snapshot()).toEqual(before);
      expect(fdLists(k)).toEqual(listsBefore);
      // The refusal is journaled, and only it: one row with the errno (plus events that happened regardless).
      const added = (await journal.events({ limit: 10_000 })).slice(rowsBefore);
      expect(added.filter((r) => !r.operation.startsWith('event.')).map((r) => r.errno)).toEqual([(error as KernelError).errno]);
    }
    expect(steps.length).toBeGreaterThan(1);
    expect(steps.at(-1)).toBe('journal.append');
    expect(k.snapshot()).toEqual(reference.snapshot());
    expect(fdLists(k)).toEqual(fdLists(reference));
  });
});

describe('Tx deferred effects', () => {
  it('runs defer() and closure-free deferOn() effects on commit, in the order given; none after a rollback', () => {
    const ran: string[] = [];
    const note = (list: string[], what: string, n: number): void => void list.push(`${what}${n}`);
    const tx = new Tx();
    tx.defer(() => ran.push('a'));
    tx.deferOn(note, ran, 'b', 1);
    tx.defer(() => ran.push('c'));
    tx.deferOn(note, ran, 'd', 2);
    expect(ran).toEqual([]);
    tx.commit();
    expect(ran).toEqual(['a', 'b1', 'c', 'd2']);
    tx.commit(); // a second commit has nothing left to run
    expect(ran).toHaveLength(4);
    const undone = new Tx();
    undone.deferOn(note, ran, 'x', 0);
    undone.rollback();
    undone.commit();
    expect(ran).toHaveLength(4);
  });
});
