// A shared mapping (mmap {shared: true}): a memory file backs it, populated at once. What its other holders (the VMM,
// its guest) write in the file is what the process, KVM and the devices' DMA see here, and the reverse; its frames are
// the process's (MEM_LIMIT, pins), and its teardown frees them and unlinks the file.
import { KernelError } from '@app/shared/errno';
import { type MemFile, type MemFileBackend, memoryFiles, openMemFile } from '@app/shared/memory/mem-file';
import { DEFAULT_LIMITS } from '../limits/limits';
import { DSA0, expectFails, newKernel, PAGE, type TestKernel } from '../kernel.testing';
import { processOps } from '../process/process.ops';

const PAGES = 16;

/** The in-process backend, with what it created and what it unlinked. */
function counted(): MemFileBackend & { created: string[]; unlinked: string[] } {
  const created: string[] = [];
  const unlinked: string[] = [];
  return {
    kind: 'memory',
    created,
    unlinked,
    create: (length) => {
      const f = memoryFiles.create(length);
      created.push(f.name);
      return f;
    },
    unlink: (name) => {
      unlinked.push(name);
      memoryFiles.unlink(name);
    },
  };
}

function kernel(opts: { memoryMiB?: number; residentBytes?: number } = {}): { k: TestKernel; files: ReturnType<typeof counted> } {
  const files = counted();
  const k = newKernel({ memoryMiB: opts.memoryMiB ?? 64, memFiles: files, limits: { ...DEFAULT_LIMITS, residentBytes: opts.residentBytes ?? DEFAULT_LIMITS.residentBytes } });
  return { k, files };
}

function mmapShared(k: TestKernel, pid: number, length: number): { hva: number; file: MemFile } {
  const r = k.call(processOps.mmap, { kind: 'process', pid }, { pid, length, shared: true });
  return { hva: r.hva, file: openMemFile(r.file as string) };
}

describe('a shared mapping is its memory file', () => {
  it('what the file’s holders write the process, KVM and DMA (through the IOMMU) read, and the reverse', () => {
    const { k } = kernel();
    const { pid } = k.createProcess('vmm/shared');
    const { hva, file } = mmapShared(k, pid, PAGES * PAGE);
    expect(file.bytes.length).toBe(PAGES * PAGE);
    // A holder of the file (the guest) writes; the process reads the same bytes at its hva.
    file.bytes.write('guest wrote this', 3 * PAGE + 5);
    expect(k.readMemory(pid, hva + 3 * PAGE + 5, 16).toString()).toBe('guest wrote this');
    k.writeMemory(pid, hva + 7 * PAGE, Buffer.from('the process wrote this'));
    expect(file.bytes.subarray(7 * PAGE, 7 * PAGE + 22).toString()).toBe('the process wrote this');
    // KVM: a memslot over the mapping sees the file at GPA = offset.
    const vm = k.createVm(pid);
    k.addMemslot(pid, vm, { gpa: 0, size: PAGES * PAGE, hva });
    expect(k.readGuestMemory(pid, vm, 3 * PAGE + 5, 16).toString()).toBe('guest wrote this');
    k.writeGuestMemory(pid, vm, 9 * PAGE, Buffer.from('kvm'));
    expect(file.bytes.subarray(9 * PAGE, 9 * PAGE + 3).toString()).toBe('kvm');
    // DMA: an iova table mapping the range (its frames pinned), routed on a device's RID, walked by the IOMMU.
    const fd = k.openIoasid(pid);
    const gpa = k.alloc(pid, fd);
    k.bindPgtbl(pid, fd, gpa, { kind: 'iova' });
    k.map(pid, fd, gpa, { iova: 0, hva, length: PAGES * PAGE, read: true, write: true });
    const dev = k.openDevice(pid, DSA0);
    k.allowIoasid(pid, dev, { ioasidFd: fd, ioasid: gpa, mode: 'rid' });
    expect(k.deviceDma(DSA0, { pasid: null, address: 3 * PAGE + 5, length: 16, write: false })).toEqual({ ok: true, data: Buffer.from('guest wrote this') });
    expect(k.deviceDma(DSA0, { pasid: null, address: 11 * PAGE, length: 3, write: true, data: Buffer.from('dma') })).toMatchObject({ ok: true });
    expect(file.bytes.subarray(11 * PAGE, 11 * PAGE + 3).toString()).toBe('dma');
    expect(k.snapshot().pins.length).toBe(PAGES);
  });

  it('its frames are the process’s: every page has one from the mmap on, counted against MEM_LIMIT_MIB', () => {
    const { k } = kernel();
    const { pid } = k.createProcess('vmm/shared');
    const before = k.memory.allocatedFrames;
    mmapShared(k, pid, PAGES * PAGE - 100);
    expect(k.memory.allocatedFrames - before).toBe(PAGES);
    expect(k.kernel.procs.get(pid).mm.residentPages).toBe(PAGES);
  });

  it('past MEM_LIMIT_MIB or the host’s memory it is ENOMEM, with nothing mapped, allocated or left in a file', () => {
    for (const opts of [{ residentBytes: (PAGES - 1) * PAGE }, { memoryMiB: 1 }]) {
      const { k, files } = kernel(opts);
      const { pid } = k.createProcess('vmm/shared');
      const length = opts.memoryMiB ? 2 * 1024 * 1024 : PAGES * PAGE;
      expectFails(k, () => mmapShared(k, pid, length), 'ENOMEM');
      // A file the call made before it failed is gone again.
      expect(files.created.filter((n) => !files.unlinked.includes(n))).toEqual([]);
      expect(k.readMemory(pid, k.mmap(pid, PAGE), 1)).toEqual(Buffer.alloc(1));
    }
  });

  it('a bad `shared` is EINVAL and changes nothing', () => {
    const { k } = kernel();
    const { pid } = k.createProcess('vmm/shared');
    expectFails(k, () => k.call(processOps.mmap, { kind: 'process', pid }, { pid, length: PAGE, shared: 'yes' as unknown as boolean }), 'EINVAL');
  });

  it('the process’s death frees its frames and unlinks the file: nobody maps it again, and its frames serve others fresh', () => {
    const { k, files } = kernel();
    const { pid } = k.createProcess('vmm/shared');
    const before = k.memory.allocatedFrames;
    const { file } = mmapShared(k, pid, PAGES * PAGE);
    file.bytes.fill(0xab);
    k.killProcess(pid, 'test');
    expect(k.memory.allocatedFrames).toBe(before);
    expect(files.unlinked).toEqual([file.name]);
    expect(() => openMemFile(file.name)).toThrow(expect.objectContaining({ errno: 'ENOENT' }) as KernelError);
    // A new process gets those frames back zeroed, whatever the old file's holders still write into it.
    const other = k.createProcess('other').pid;
    const hva = k.mmap(other, PAGES * PAGE);
    k.writeMemory(other, hva, Buffer.alloc(PAGES * PAGE));
    file.bytes.fill(0xcd);
    expect(k.readMemory(other, hva, PAGES * PAGE)).toEqual(Buffer.alloc(PAGES * PAGE));
  });

  it('the file’s name goes to the caller only: the journal records the mapping, never its name', () => {
    expect(processOps.mmap.result?.({ hva: 0x7f0000000000, file: 'memfd:secret' })).toEqual({ hva: 0x7f0000000000 });
  });
});
