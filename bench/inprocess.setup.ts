// Setup for the in-process benchmarks: the worlds the data-plane specs build (data-plane.testing.ts),
// with the engines stalled so the bench drives every descriptor itself.
import type { Descriptor } from '@app/shared/contract/host-kernel';
import { PAGE_SIZE } from '@app/shared/x86/pte';
import { bindGuestSva, bytes, guestWorld, hostSva } from '../apps/host-kernel/src/data-plane.testing';
import { DSA0, newKernel, type TestKernel } from '../apps/host-kernel/src/kernel.testing';
import { DEFAULT_LIMITS, type Limits } from '../apps/host-kernel/src/limits/limits';

export const BENCH_DSA = DSA0;

/** A kernel whose engines start stalled: the bench drives them with step(), so nothing runs behind its back. */
export function benchKernel(memoryMiB = 16, limits: Partial<Limits> = {}): TestKernel {
  return newKernel({ memoryMiB, engine: { paused: true }, limits: { ...DEFAULT_LIMITS, ...limits } });
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

/** A VM whose guest maps GVA_SRC/DST/DONE in its own 4-level table and is bound to a nested ioasid (DESIGN §4 guest SVA). */
export function nestedWorld(k: TestKernel, vpasid = 7, ramPages = 32): NestedWorld {
  const w = guestWorld(k, { bdf: BENCH_DSA, ramPages, comm: 'vmm/bench' });
  const [src, dst, done] = [w.allocPage(), w.allocPage(), w.allocPage()];
  w.map(GVA_SRC, src);
  w.map(GVA_DST, dst);
  w.map(GVA_DONE, done);
  const ppasid = bindGuestSva(k, w, vpasid);
  return { pid: w.pid, fd: w.fd, vm: w.vm, dev: w.dev, gpa: w.gpa, ppasid, src, dst, done };
}

/** A host process whose mm is bound to an ioasid allowed on the device (PASID mode), IA32_PASID set; 3 pages: src, dst, completion. */
export function hostSvaWorld(k: TestKernel): { pid: number; fd: number; dev: number; ppasid: number; buf: number } {
  return hostSva(k, BENCH_DSA, 3);
}

export const memmove4k = (src: number, dst: number, completion: number): Descriptor => ({ op: 'memmove', src, dst, length: PAGE_SIZE, completion });

/** n bytes of a recognisable pattern. */
export const pattern = bytes;
