// Setup for the in-process benchmarks: the same worlds the data-plane specs build (apps/host-kernel/src/
// data-plane.testing.ts), rebuilt here because the *.testing.ts helpers pull in jest's `expect`.
import type { Descriptor } from '@app/shared/contract/host-kernel';
import { mapPage } from '@app/shared/x86/map';
import type { WalkMemory } from '@app/shared/x86/walk';
import { PAGE_SIZE } from '@app/shared/x86/pte';
import { DeviceConfig, Kernel } from '../apps/host-kernel/src/kernel';
import { IA32_PASID_VALID } from '../apps/host-kernel/src/kvm/kvm.constants';

/** One DSA-like device with a 20-bit PASID capability (as kernel.testing.ts's DSA0). */
export const BENCH_DSA = '0000:6a:01.0';
const DEVICES: DeviceConfig[] = [{ bdf: BENCH_DSA, vendorId: 0x8086, deviceId: 0x0b25, pasidWidth: 20, wqDepth: 32 }];

/** A kernel whose engines start stalled: the bench drives them with step(), so nothing runs behind its back. */
export function benchKernel(memoryMiB = 16): Kernel {
  return new Kernel({ memoryMiB, devices: DEVICES, engine: { paused: true } });
}

/** GVAs of one 4 KiB memmove: src page, dst page, completion-record page. */
export const GVA_SRC = 0x400000;
export const GVA_DST = 0x401000;
export const GVA_DONE = 0x402000;

export interface NestedWorld {
  pid: number;
  fd: number;
  vm: number;
  dev: number;
  /** the GPA (iova) ioasid */
  gpa: number;
  /** the nested ioasid the guest's process is bound to */
  ppasid: number;
  /** GPAs behind GVA_SRC / GVA_DST / GVA_DONE */
  src: number;
  dst: number;
  done: number;
}

/**
 * A VMM with one VM (guest RAM at GPA 0, a GPA ioasid on the device's RID, PASID translation on) whose guest
 * maps GVA_SRC/DST/DONE in its own 4-level table and is bound to a nested ioasid (DESIGN §4 guest SVA).
 */
export function nestedWorld(k: Kernel, vpasid = 7, ramPages = 32): NestedWorld {
  const { pid } = k.createProcess('vmm/bench');
  const ram = k.mmap(pid, ramPages * PAGE_SIZE);
  const fd = k.openIoasid(pid);
  const gpa = k.alloc(pid, fd);
  k.bindPgtbl(pid, fd, gpa, { kind: 'iova' });
  k.map(pid, fd, gpa, { iova: 0, hva: ram, length: ramPages * PAGE_SIZE, read: true, write: true });
  const vm = k.createVm(pid);
  k.addMemslot(pid, vm, { gpa: 0, size: ramPages * PAGE_SIZE, hva: ram });
  k.createVcpu(pid, vm);
  const dev = k.openDevice(pid, BENCH_DSA);
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
  let next = PAGE_SIZE; // guest page 0 stays unused
  const allocPage = (): number => {
    if (next >= ramPages * PAGE_SIZE) throw new Error('bench guest RAM exhausted');
    next += PAGE_SIZE;
    return next - PAGE_SIZE;
  };
  const cr3 = allocPage();
  const [src, dst, done] = [allocPage(), allocPage(), allocPage()];
  for (const [va, pa] of [[GVA_SRC, src], [GVA_DST, dst], [GVA_DONE, done]]) mapPage(mem, cr3, va, pa, { writable: true, user: true }, allocPage);
  const ppasid = k.alloc(pid, fd);
  k.bindPgtbl(pid, fd, ppasid, { kind: 'nested', parent: gpa, root: cr3 });
  k.allowIoasid(pid, dev, { ioasidFd: fd, ioasid: ppasid, mode: 'pasid' });
  k.mapPasid(pid, vm, { vpasid, ioasidFd: fd, ioasid: ppasid });
  k.vcpuWrmsr(pid, vm, 0, 'IA32_PASID', (IA32_PASID_VALID | vpasid) >>> 0);
  return { pid, fd, vm, dev, gpa, ppasid, src, dst, done };
}

export interface HostSvaWorld {
  pid: number;
  fd: number;
  dev: number;
  ppasid: number;
  /** hva of 3 pages: src, dst, completion record */
  buf: number;
}

/** A host process whose mm is bound to an ioasid allowed on the device (PASID mode), IA32_PASID set. */
export function hostSvaWorld(k: Kernel): HostSvaWorld {
  const { pid } = k.createProcess('sva/bench');
  const buf = k.mmap(pid, 3 * PAGE_SIZE);
  const fd = k.openIoasid(pid);
  const ppasid = k.alloc(pid, fd);
  k.bindPgtbl(pid, fd, ppasid, { kind: 'mm' });
  const dev = k.openDevice(pid, BENCH_DSA);
  k.allowIoasid(pid, dev, { ioasidFd: fd, ioasid: ppasid, mode: 'pasid' });
  k.wrmsr(pid, 'IA32_PASID', (IA32_PASID_VALID | ppasid) >>> 0);
  return { pid, fd, dev, ppasid, buf };
}

export const memmove4k = (src: number, dst: number, completion: number): Descriptor => ({ op: 'memmove', src, dst, length: PAGE_SIZE, completion });

/** n bytes of a recognisable pattern. */
export const pattern = (n: number, seed: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff));
