import { KernelError } from '@app/shared/errno';
import { walk4Level, WalkMemory } from '@app/shared/x86/walk';
import { type FailWhen, failWhen } from '../../../../stack/fail-when';
import { VmOnStack } from '../../../../stack/fixtures/vm-on-stack';
import type { VmmPort } from '../vmm.port';
import { FrameAllocator } from './frame-allocator';
import { GuestMm } from './guest-mm';
import { MMAP_BASE, PAGE_SIZE } from './mm.constants';

/** A VM with no device; GuestMm over the guest's door to it (every call logged, any call can be made to fail). */
async function setup(memoryMiB = 1): Promise<{ bed: VmOnStack; door: FailWhen<VmmPort>; mm: GuestMm }> {
  const bed = await VmOnStack.start({ memoryMiB });
  const door = failWhen<VmmPort>(bed.port);
  return { bed, door, mm: new GuestMm(door.port, new FrameAllocator(bed.ramBytes)) };
}

/** MAP_POPULATE: every page gets its frame at mmap (the eager behaviour the tests of frames rely on). */
const EAGER = { populate: true };

/** A walker over guest RAM as the VMM holds it (not the guest's cache): what the IOMMU would see. */
const ramWalker = (ram: Buffer): WalkMemory => ({ readU64: (a) => ram.readBigUInt64LE(a) });

afterEach(() => VmOnStack.closeAll());

describe('FrameAllocator', () => {
  it('hands out frames lowest first, never page 0, and reuses the lowest freed frame', () => {
    const fa = new FrameAllocator(16 * PAGE_SIZE);
    expect([fa.alloc(), fa.alloc(), fa.alloc()]).toEqual([0x1000, 0x2000, 0x3000]);
    fa.free(0x2000);
    expect(fa.alloc()).toBe(0x2000);
    expect(fa.freeFrames).toBe(12);
  });

  it('ENOMEM when full and allocMany is all-or-nothing; bad frees are EINVAL and change nothing', () => {
    const fa = new FrameAllocator(4 * PAGE_SIZE);
    expect(() => fa.allocMany(4)).toThrow(expect.objectContaining({ errno: 'ENOMEM' }));
    expect(fa.freeFrames).toBe(3);
    fa.allocMany(3);
    expect(() => fa.alloc()).toThrow(expect.objectContaining({ errno: 'ENOMEM' }));
    for (const bad of [0, 0x1001, 0x8000]) expect(() => fa.free(bad)).toThrow(expect.objectContaining({ errno: 'EINVAL' }));
    fa.free(0x1000);
    expect(() => fa.free(0x1000)).toThrow(expect.objectContaining({ errno: 'EINVAL' }));
    expect(fa.freeFrames).toBe(1);
  });
});

describe('GuestMm', () => {
  it('gives each process its own zeroed PML4 and pids 1, 2, …', async () => {
    const { bed, mm } = await setup();
    await bed.port.writeMemory(0x1000, Buffer.alloc(0x2000, 0xaa));
    const a = await mm.createProcess('a');
    const b = await mm.createProcess('b');
    expect([a.pid, b.pid]).toEqual([1, 2]);
    expect(a.cr3).not.toBe(b.cr3);
    const ram = await bed.ram();
    for (const cr3 of [a.cr3, b.cr3]) expect(ram.subarray(cr3, cr3 + PAGE_SIZE).every((x) => x === 0)).toBe(true);
    expect(() => mm.process(3)).toThrow(expect.objectContaining({ errno: 'ESRCH' }));
  });

  it('mmap maps consecutive GVAs from MMAP_BASE to zeroed frames, user + writable, in guest RAM', async () => {
    const { bed, mm } = await setup();
    const p = await mm.createProcess('a');
    await bed.port.writeMemory(0x2000, Buffer.alloc(0x40000 - 0x2000, 0x55)); // stale bytes the new frames must not show
    const gva = await mm.mmap(p.pid, 3 * PAGE_SIZE - 100, EAGER);
    const gva2 = await mm.mmap(p.pid, 1, EAGER);
    expect(gva).toBe(MMAP_BASE);
    expect(gva2).toBe(MMAP_BASE + 3 * PAGE_SIZE);
    const frames = [...p.mappings[0].frames, ...p.mappings[1].frames];
    expect(new Set(frames).size).toBe(4);
    const ram = await bed.ram();
    for (const [i, va] of [gva, gva + PAGE_SIZE, gva + 2 * PAGE_SIZE, gva2].entries()) {
      const r = walk4Level(p.cr3, va + 12, { write: true }, ramWalker(ram));
      expect(r).toEqual({ ok: true, address: (frames[i] as number) + 12, writable: true, user: true, levels: 4 });
      expect(ram.subarray(frames[i] as number, (frames[i] as number) + PAGE_SIZE).every((x) => x === 0)).toBe(true);
    }
    expect(walk4Level(p.cr3, gva2 + PAGE_SIZE, { write: false }, ramWalker(ram))).toMatchObject({ ok: false, reason: 'not-present' });
  });

  it('two processes at the same GVA reach different frames', async () => {
    const { bed, mm } = await setup();
    const a = await mm.createProcess('a');
    const b = await mm.createProcess('b');
    const ga = await mm.mmap(a.pid, 10);
    const gb = await mm.mmap(b.pid, 10);
    expect(ga).toBe(gb);
    await mm.write(a.pid, ga, Buffer.from('from a'));
    await mm.write(b.pid, gb, Buffer.from('from b'));
    expect((await mm.read(a.pid, ga, 6)).toString()).toBe('from a');
    expect((await mm.read(b.pid, gb, 6)).toString()).toBe('from b');
    const ram = await bed.ram();
    const ra = walk4Level(a.cr3, ga, { write: false }, ramWalker(ram));
    const rb = walk4Level(b.cr3, gb, { write: false }, ramWalker(ram));
    expect(ra.ok && ram.subarray(ra.address, ra.address + 6).toString()).toBe('from a');
    expect(rb.ok && ram.subarray(rb.address, rb.address + 6).toString()).toBe('from b');
  });

  it('read/write by GVA crosses pages; an unmapped byte is EFAULT before anything is written', async () => {
    const { bed, door, mm } = await setup();
    const p = await mm.createProcess('a');
    const gva = await mm.mmap(p.pid, 2 * PAGE_SIZE);
    const data = Buffer.from(Array.from({ length: 300 }, (_, i) => i & 0xff));
    await mm.write(p.pid, gva + PAGE_SIZE - 150, data);
    expect(await mm.read(p.pid, gva + PAGE_SIZE - 150, 300)).toEqual(data);
    const before = await bed.ram();
    const calls = door.calls.length;
    await expect(mm.write(p.pid, gva + 2 * PAGE_SIZE - 10, Buffer.alloc(20, 1))).rejects.toMatchObject({ errno: 'EFAULT' });
    await expect(mm.read(p.pid, 0x1000, 4)).rejects.toMatchObject({ errno: 'EFAULT' });
    expect(door.calls.length).toBe(calls);
    expect((await bed.ram()).equals(before)).toBe(true);
  });

  it('bad mmap input is EINVAL, exhaustion is ENOMEM, both leaving state unchanged', async () => {
    const { bed, mm } = await setup();
    const p = await mm.createProcess('a');
    const free = mm.frames.freeFrames;
    await expect(mm.mmap(p.pid, 0)).rejects.toMatchObject({ errno: 'EINVAL' });
    await expect(mm.mmap(p.pid, 1.5)).rejects.toMatchObject({ errno: 'EINVAL' });
    await expect(mm.mmap(p.pid, 2 * bed.ramBytes, EAGER)).rejects.toMatchObject({ errno: 'ENOMEM' });
    await expect(mm.mmap(99, 10)).rejects.toMatchObject({ errno: 'ESRCH' });
    expect(mm.frames.freeFrames).toBe(free);
    expect(p.mappings).toEqual([]);
    expect(await mm.mmap(p.pid, 10)).toBe(MMAP_BASE);
  });

  it('munmap clears the PTEs in RAM, calls the IOTLB hook before freeing the frames', async () => {
    const { bed, mm } = await setup();
    const p = await mm.createProcess('a');
    const gva = await mm.mmap(p.pid, 2 * PAGE_SIZE, EAGER);
    const frames = p.mappings[0].frames as number[];
    const seen: Array<[number, number, number, boolean, boolean]> = [];
    mm.onUnmap = async (pid, va, len) => {
      const allocated = mm.frames.isAllocated(frames[0]);
      const inRam = walk4Level(p.cr3, gva, { write: false }, ramWalker(await bed.ram())).ok;
      seen.push([pid, va, len, allocated, inRam]);
    };
    await expect(mm.munmap(p.pid, gva, PAGE_SIZE)).rejects.toBeInstanceOf(KernelError);
    await mm.munmap(p.pid, gva, 2 * PAGE_SIZE);
    expect(seen).toEqual([[p.pid, gva, 2 * PAGE_SIZE, true, false]]);
    expect(frames.every((f) => !mm.frames.isAllocated(f))).toBe(true);
    await expect(mm.read(p.pid, gva, 1)).rejects.toMatchObject({ errno: 'EFAULT' });
    // GVAs are not reused
    expect(await mm.mmap(p.pid, 1)).toBe(gva + 2 * PAGE_SIZE);
  });

  it('mmap whose page-table flush fails: clears the PTEs in RAM and invalidates before freeing, and never reuses the GVAs', async () => {
    const { bed, door, mm } = await setup();
    const p = await mm.createProcess('a');
    let failures = 1;
    // The PML4 is written last: by then the new PT with the PTE is already in RAM.
    door.fail = (method, args) => (method === 'writeMemory' && args[0] === p.cr3 && failures-- > 0 ? 'EIO' : null);
    const frame = p.cr3 + PAGE_SIZE; // the next free frame: the data page, allocated before the tables
    const seen: Array<[number, number, boolean, boolean]> = [];
    mm.onUnmap = async (_pid, va, len) => {
      const allocated = mm.frames.isAllocated(frame);
      const inRam = walk4Level(p.cr3, MMAP_BASE, { write: false }, ramWalker(await bed.ram())).ok;
      seen.push([va, len, allocated, inRam]);
    };
    await expect(mm.mmap(p.pid, 10, EAGER)).rejects.toMatchObject({ errno: 'EIO' });
    expect(door.calls.filter((c) => c.injected).map((c) => [c.method, c.args[0]])).toEqual([['writeMemory', p.cr3]]);
    expect(seen).toEqual([[MMAP_BASE, PAGE_SIZE, true, false]]);
    expect(mm.frames.isAllocated(frame)).toBe(false);
    expect(p.mappings).toEqual([]);
    expect(await mm.mmap(p.pid, 10, EAGER)).toBe(MMAP_BASE + PAGE_SIZE);
  });

  it('when that clean-up cannot reach RAM either, the frames stay allocated (quarantined)', async () => {
    const { door, mm } = await setup();
    const p = await mm.createProcess('a');
    let broken = true;
    door.fail = (method, args) => (method === 'writeMemory' && args[0] === p.cr3 && broken ? 'EIO' : null);
    let hooked = 0;
    mm.onUnmap = async () => void hooked++;
    const frame = p.cr3 + PAGE_SIZE;
    await expect(mm.mmap(p.pid, 10, EAGER)).rejects.toMatchObject({ errno: 'EIO' });
    expect(hooked).toBe(0);
    expect(mm.frames.isAllocated(frame)).toBe(true);
    expect(mm.quarantinedFrames()).toEqual([frame]);
    broken = false;
    const gva = await mm.mmap(p.pid, 10, EAGER);
    expect(gva).toBe(MMAP_BASE + PAGE_SIZE);
    expect(p.mappings[0].frames).not.toContain(frame);
  });

  it('munmap whose IOTLB hook fails keeps the frames allocated (quarantined) and rethrows', async () => {
    const { mm } = await setup();
    const p = await mm.createProcess('a');
    const gva = await mm.mmap(p.pid, 2 * PAGE_SIZE, EAGER);
    const frames = [...p.mappings[0].frames] as number[];
    mm.onUnmap = async () => {
      throw new KernelError('EIO', 'piotlb refused');
    };
    await expect(mm.munmap(p.pid, gva, 2 * PAGE_SIZE)).rejects.toMatchObject({ errno: 'EIO' });
    expect(frames.every((f) => mm.frames.isAllocated(f))).toBe(true);
    expect(mm.quarantinedFrames()).toEqual(frames);
    expect(p.mappings).toEqual([]);
  });
});

describe('GuestMm: frames on first touch', () => {
  const RW = { read: true, write: true, exec: false, privileged: false };

  it('mmap only reserves GVAs; a write gives exactly the pages it touches their frames; an untouched page reads as zeros', async () => {
    const { door, mm } = await setup();
    const p = await mm.createProcess('a');
    const free = mm.frames.freeFrames;
    const gva = await mm.mmap(p.pid, 4 * PAGE_SIZE);
    expect(mm.frames.freeFrames).toBe(free);
    expect(p.mappings[0].frames).toEqual([null, null, null, null]);
    const calls = door.calls.length;
    expect(await mm.read(p.pid, gva + PAGE_SIZE - 8, 16)).toEqual(Buffer.alloc(16));
    expect(door.calls.length).toBe(calls); // zeros without a frame, without a port call
    await mm.write(p.pid, gva + 2 * PAGE_SIZE + 10, Buffer.from('touched'));
    expect(p.mappings[0].frames.map((f) => f !== null)).toEqual([false, false, true, false]);
    expect(mm.frames.freeFrames).toBeLessThan(free);
    expect((await mm.read(p.pid, gva + 2 * PAGE_SIZE, 17)).subarray(10).toString()).toBe('touched');
    expect(() => mm.translate(p.pid, gva, false)).toThrow(expect.objectContaining({ errno: 'EFAULT' }));
  });

  it('a page request inside a mapping maps its pages (success); outside any mapping, or to execute, it is invalid', async () => {
    const { mm } = await setup();
    const p = await mm.createProcess('a');
    const gva = await mm.mmap(p.pid, 2 * PAGE_SIZE);
    expect(await mm.faultIn(p.pid, [{ addr: gva, perm: RW }, { addr: gva + PAGE_SIZE, perm: { ...RW, read: false } }])).toBe('success');
    expect(p.mappings[0].frames.every((f) => f !== null)).toBe(true);
    expect(mm.translate(p.pid, gva + PAGE_SIZE, true)).toBe(p.mappings[0].frames[1]);
    const free = mm.frames.freeFrames;
    expect(await mm.faultIn(p.pid, [{ addr: gva + 2 * PAGE_SIZE, perm: RW }])).toBe('invalid');
    expect(await mm.faultIn(p.pid, [{ addr: gva, perm: { ...RW, exec: true, read: false } }])).toBe('invalid');
    expect(mm.frames.freeFrames).toBe(free);
  });

  it('iommu_sva_handle_iopf stops at the first request it cannot serve: the pages before it stay mapped', async () => {
    const { mm } = await setup();
    const p = await mm.createProcess('a');
    const gva = await mm.mmap(p.pid, 2 * PAGE_SIZE);
    expect(await mm.faultIn(p.pid, [{ addr: gva, perm: RW }, { addr: 0x1000, perm: RW }, { addr: gva + PAGE_SIZE, perm: RW }])).toBe('invalid');
    expect(p.mappings[0].frames.map((f) => f !== null)).toEqual([true, false]);
  });

  it('munmap frees the frames of the touched pages only', async () => {
    const { mm } = await setup();
    const p = await mm.createProcess('a');
    const free = mm.frames.freeFrames;
    const gva = await mm.mmap(p.pid, 3 * PAGE_SIZE);
    await mm.write(p.pid, gva, Buffer.from('x'));
    const frame = p.mappings[0].frames[0] as number;
    await mm.munmap(p.pid, gva, 3 * PAGE_SIZE);
    expect(mm.frames.isAllocated(frame)).toBe(false);
    // the page tables made for the first touch stay (they outlive their last mapping)
    expect(mm.frames.freeFrames).toBeLessThanOrEqual(free);
    await expect(mm.read(p.pid, gva, 1)).rejects.toMatchObject({ errno: 'EFAULT' });
  });
});
