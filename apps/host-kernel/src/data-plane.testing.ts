// Test support for the data-plane specs (not used by production code): a VMM with a VM whose guest builds
// x86-64 page tables in its own RAM, and a host process doing SVA.
import type { Descriptor } from '@app/shared/contract/host-kernel';
import { decodeCompletion } from '@app/shared/dsa/descriptor';
import { mapPage, type PageFlags } from '@app/shared/x86/map';
import type { WalkMemory } from '@app/shared/x86/walk';
import { IA32_PASID_VALID } from '@app/shared/x86/msr.constants';
import { DSA0, PAGE, type TestKernel } from './kernel.testing';

/** A VMM process running one VM: guest RAM at GPA [0, ramPages), a GPA ioasid on `bdf`'s RID, translation on. */
export interface GuestWorld {
  pid: number;
  fd: number;
  vm: number;
  dev: number;
  bdf: string;
  /** the GPA (iova) ioasid */
  gpa: number;
  ram: number;
  /** guest-physical memory as a page-table walker sees it */
  mem: Required<WalkMemory>;
  /** a zeroed guest page (bump allocator from GPA 0x1000) */
  allocPage(): number;
  /** a guest page table root (CR3) */
  cr3: number;
  map(va: number, pa: number, flags?: Partial<PageFlags>, cr3?: number): void;
  /** the host frame behind a GPA (through the GPA ioasid) */
  hpaOf(gpa: number): number;
}

export function guestWorld(k: TestKernel, opts: { bdf?: string; ramPages?: number; comm?: string } = {}): GuestWorld {
  const bdf = opts.bdf ?? DSA0;
  const ramPages = opts.ramPages ?? 64;
  const { pid } = k.createProcess(opts.comm ?? 'vmm/test');
  const ram = k.mmap(pid, ramPages * PAGE);
  const fd = k.openIoasid(pid);
  const gpa = k.alloc(pid, fd);
  k.bindPgtbl(pid, fd, gpa, { kind: 'iova' });
  k.map(pid, fd, gpa, { iova: 0, hva: ram, length: ramPages * PAGE, read: true, write: true });
  const vm = k.createVm(pid);
  k.addMemslot(pid, vm, { gpa: 0, size: ramPages * PAGE, hva: ram });
  k.createVcpu(pid, vm);
  const dev = k.openDevice(pid, bdf);
  k.allowIoasid(pid, dev, { ioasidFd: fd, ioasid: gpa, mode: 'rid' });
  k.setPasidTranslation(pid, vm, true);
  const mem: Required<WalkMemory> = {
    readU64: (at) => k.readGuestMemory(pid, vm, at, 8).readBigUInt64LE(0),
    writeU64: (at, value) => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(value, 0);
      k.writeGuestMemory(pid, vm, at, b);
      return true;
    },
  };
  let next = PAGE;
  const allocPage = (): number => {
    if (next >= ramPages * PAGE) throw new Error('guest RAM exhausted');
    const page = next;
    next += PAGE;
    return page;
  };
  const cr3 = allocPage();
  return {
    pid,
    fd,
    vm,
    dev,
    bdf,
    gpa,
    ram,
    mem,
    allocPage,
    cr3,
    map: (va, pa, flags = {}, root = cr3) => mapPage(mem, root, va, pa, { writable: flags.writable ?? true, user: flags.user ?? true }, allocPage),
    hpaOf: (at) => {
      const t = k.route(bdf, null);
      if (t?.kind !== 'iova') throw new Error('no GPA route');
      const hit = t.lookup(at);
      if (!hit) throw new Error(`gpa ${at} is not mapped`);
      return hit.hpa;
    },
  };
}

/**
 * Guest SVA bind (DESIGN §4 steps 4-7): nested ioasid over the GPA ioasid (sending its page requests to
 * `faultQueue` if given), allowed on the device, vPASID mapped. `root` null = pass-through (BIND_PGTBL without a root).
 */
export function bindGuestSva(k: TestKernel, w: GuestWorld, vpasid: number, root: number | null = w.cr3, faultQueue?: number): number {
  const ppasid = k.alloc(w.pid, w.fd);
  k.bindPgtbl(w.pid, w.fd, ppasid, { kind: 'nested', parent: w.gpa, ...(root === null ? {} : { root }), ...(faultQueue === undefined ? {} : { faultQueue }) });
  k.allowIoasid(w.pid, w.dev, { ioasidFd: w.fd, ioasid: ppasid, mode: 'pasid' });
  k.mapPasid(w.pid, w.vm, { vpasid, ioasidFd: w.fd, ioasid: ppasid });
  k.vcpuWrmsr(w.pid, w.vm, 0, 'IA32_PASID', (IA32_PASID_VALID | vpasid) >>> 0);
  return ppasid;
}

/**
 * A host process whose mm is bound to an ioasid allowed on `bdf` (PASID mode), IA32_PASID set; `pages` mmapped and
 * touched (present, as after the process wrote them: a device reaches an untouched page only by a page request).
 */
export function hostSva(k: TestKernel, bdf: string, pages = 4): { pid: number; fd: number; dev: number; ppasid: number; buf: number } {
  const { pid } = k.createProcess('sva-app');
  const buf = k.mmap(pid, pages * PAGE);
  k.writeMemory(pid, buf, Buffer.alloc(pages * PAGE));
  const fd = k.openIoasid(pid);
  const ppasid = k.alloc(pid, fd);
  k.bindPgtbl(pid, fd, ppasid, { kind: 'mm' });
  const dev = k.openDevice(pid, bdf);
  k.allowIoasid(pid, dev, { ioasidFd: fd, ioasid: ppasid, mode: 'pasid' });
  k.wrmsr(pid, 'IA32_PASID', (IA32_PASID_VALID | ppasid) >>> 0);
  return { pid, fd, dev, ppasid, buf };
}

export const memmove = (src: number, dst: number, length: number, completion: number): Descriptor => ({ op: 'memmove', src, dst, length, completion });

export const bytes = (n: number, seed = 1): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff));

export const guestRecord = (k: TestKernel, w: GuestWorld, gpa: number) => decodeCompletion(k.readGuestMemory(w.pid, w.vm, gpa, 32));
