import { FaultInjector, Tx, atomically } from '../fault-injection';
import { errnoOf, expectFails, newKernel, PAGE } from '../kernel.testing';
import { AddressSpace } from './address-space';
import { CANONICAL_LIMIT } from '@app/shared/x86/x86.constants';
import { MMAP_BASE, MMAP_END } from './memory.constants';
import { PhysicalMemory } from './physical-memory';

describe('PhysicalMemory', () => {
  it('allocates frames up to the configured total, then ENOMEM; freed frames come back zeroed', () => {
    const mem = new PhysicalMemory(1);
    const pfns: number[] = [];
    for (let i = 0; i < mem.totalFrames; i++) pfns.push(mem.allocFrameNow());
    expect(new Set(pfns).size).toBe(256);
    expect(pfns).not.toContain(0);
    expect(errnoOf(() => mem.allocFrameNow())).toBe('ENOMEM');
    mem.write(pfns[10] * PAGE + 100, Buffer.from('hello'));
    expect(mem.read(pfns[10] * PAGE + 100, 5).toString()).toBe('hello');
    mem.freeFrame(pfns[10]);
    expect(mem.allocFrameNow()).toBe(pfns[10]);
    expect(mem.read(pfns[10] * PAGE + 100, 5)).toEqual(Buffer.alloc(5));
  });

  it('is sparse: reading never-written bytes gives zeros, writes to a free frame are refused', () => {
    const mem = new PhysicalMemory(1);
    const pfn = mem.allocFrameNow();
    expect(mem.read(pfn * PAGE, 8)).toEqual(Buffer.alloc(8));
    expect(errnoOf(() => mem.write((pfn + 1) * PAGE, Buffer.from([1])))).toBe('EFAULT');
    expect(errnoOf(() => mem.read(0, 8))).toBe('EFAULT');
    expect(errnoOf(() => mem.read(257 * PAGE, 1))).toBe('EFAULT');
  });

  it('counts pins per frame and refuses to free a pinned frame', () => {
    const mem = new PhysicalMemory(1);
    const pfn = mem.allocFrameNow();
    const tx = new Tx();
    mem.pin(tx, pfn);
    mem.pin(tx, pfn);
    expect(mem.pinCount(pfn)).toBe(2);
    expect(errnoOf(() => mem.freeFrame(pfn))).toBe('EBUSY');
    tx.rollback();
    expect(mem.pinCount(pfn)).toBe(0);
  });
});

describe('AddressSpace', () => {
  it('mmap returns page-aligned hvas, rounds the length up, and refuses length 0', () => {
    const mm = new AddressSpace(new PhysicalMemory(1));
    const a = atomically(undefined, (tx) => mm.mmap(tx, 1));
    const b = atomically(undefined, (tx) => mm.mmap(tx, PAGE + 1));
    expect(a).toBe(MMAP_BASE);
    expect(b).toBe(a + PAGE);
    expect(mm.isMapped(b, 2 * PAGE)).toBe(true);
    expect(mm.isMapped(a, 4 * PAGE)).toBe(false);
    expect(errnoOf(() => atomically(undefined, (tx) => mm.mmap(tx, 0)))).toBe('EINVAL');
  });

  it('a failed mmap (fault injected) consumes no address space', () => {
    const faults = new FaultInjector();
    const mm = new AddressSpace(new PhysicalMemory(1));
    faults.arm(1);
    expect(errnoOf(() => atomically(faults, (tx) => mm.mmap(tx, PAGE)))).toBe('ENOMEM');
    expect(atomically(faults, (tx) => mm.mmap(tx, PAGE))).toBe(MMAP_BASE);
  });

  it('never hands out a non-canonical hva: a mapping that would end beyond 2^47 is ENOMEM and maps nothing', () => {
    const mm = new AddressSpace(new PhysicalMemory(1));
    const mmap = (length: number): number => atomically(undefined, (tx) => mm.mmap(tx, length));
    const first = mmap(CANONICAL_LIMIT - MMAP_BASE - PAGE); // all but the last page below 2^47
    expect(first).toBe(MMAP_BASE);
    expect(errnoOf(() => mmap(2 * PAGE))).toBe('ENOMEM');
    const last = mmap(PAGE); // the failed call consumed nothing: the last page is still there
    expect(last).toBe(MMAP_END - PAGE);
    expect(last + PAGE).toBeLessThanOrEqual(CANONICAL_LIMIT);
    expect(errnoOf(() => mmap(1))).toBe('ENOMEM');
    expect(mm.isMapped(CANONICAL_LIMIT, 1)).toBe(false);
  });
});

describe('process memory through the kernel', () => {
  it('writes and reads by hva, across pages; untouched pages read as zeros without allocating', () => {
    const k = newKernel();
    const { pid } = k.createProcess('p');
    const hva = k.mmap(pid, 3 * PAGE);
    const data = Buffer.from('0123456789');
    k.writeMemory(pid, hva + PAGE - 5, data);
    expect(k.readMemory(pid, hva + PAGE - 5, data.length)).toEqual(data);
    expect(k.readMemory(pid, hva + 2 * PAGE, 4)).toEqual(Buffer.alloc(4));
    expect(k.snapshot().processes[0].residentPages).toBe(2);
  });

  it('an access reaching past the mapping is EFAULT and writes nothing', () => {
    const k = newKernel();
    const { pid } = k.createProcess('p');
    const hva = k.mmap(pid, PAGE);
    expectFails(k, () => k.writeMemory(pid, hva + PAGE - 2, Buffer.from('abcd')), 'EFAULT');
    expect(k.readMemory(pid, hva + PAGE - 2, 2)).toEqual(Buffer.alloc(2));
    expect(errnoOf(() => k.readMemory(pid, hva + PAGE - 2, 4))).toBe('EFAULT');
    expect(errnoOf(() => k.readMemory(pid, 0x1000, 4))).toBe('EFAULT');
  });

  it('running out of frames mid-write is ENOMEM and leaves nothing allocated or written', () => {
    const k = newKernel({ memoryMiB: 1 });
    const { pid } = k.createProcess('p');
    const hva = k.mmap(pid, 300 * PAGE);
    expectFails(k, () => k.writeMemory(pid, hva, Buffer.alloc(300 * PAGE, 1)), 'ENOMEM');
    expect(k.memory.allocatedFrames).toBe(0);
    k.writeMemory(pid, hva, Buffer.alloc(256 * PAGE, 1));
    expect(k.memory.allocatedFrames).toBe(256);
  });

  it('bounds a single access and checks the caller', () => {
    const k = newKernel();
    const { pid } = k.createProcess('p');
    const hva = k.mmap(pid, 32 * 1024 * 1024);
    expect(errnoOf(() => k.readMemory(pid, hva, 17 * 1024 * 1024))).toBe('EINVAL');
    expect(errnoOf(() => k.readMemory(999, hva, 1))).toBe('ESRCH');
    expect(errnoOf(() => k.mmap(pid, -1))).toBe('EINVAL');
  });

  it('mmap past the end of the user address space is ENOMEM and changes nothing', () => {
    const k = newKernel();
    const { pid } = k.createProcess('p');
    expect(k.mmap(pid, 2 ** 40)).toBe(MMAP_BASE); // exactly fills [MMAP_BASE, 2^47)
    expectFails(k, () => k.mmap(pid, PAGE), 'ENOMEM');
  });
});
