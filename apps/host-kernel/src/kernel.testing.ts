// Test support for the kernel domain specs (not used by production code).
import { errnoOf } from '@app/shared/errno.testing';
import { DeviceConfig, Kernel, KernelOptions } from './kernel';

export { errnoOf };

export const DSA0 = '0000:6a:01.0';
export const DSA1 = '0000:6b:01.0';
/** A device without a PASID capability. */
export const NOPASID = '0000:6c:01.0';

export const TEST_DEVICES: DeviceConfig[] = [
  { bdf: DSA0, vendorId: 0x8086, deviceId: 0x0b25, pasidWidth: 20, wqDepth: 32 },
  { bdf: DSA1, vendorId: 0x8086, deviceId: 0x0b25, pasidWidth: 20, wqDepth: 32 },
  { bdf: NOPASID, vendorId: 0x8086, deviceId: 0x1234, pasidWidth: 0, wqDepth: 8 },
];

export const PAGE = 4096;

export function newKernel(opts: Partial<KernelOptions> = {}): Kernel {
  return new Kernel({ memoryMiB: 16, devices: TEST_DEVICES, ...opts });
}


/** fn fails with errno and leaves the whole kernel state exactly as it was. */
export function expectFails(k: Kernel, fn: () => unknown, errno: string): void {
  const before = k.snapshot();
  expect(errnoOf(fn)).toBe(errno);
  expect(k.snapshot()).toEqual(before);
}

/** A process with an ioasid fd, an mmapped buffer and one bound iova ioasid mapping it at iova 0. */
export function vmmWithGpaSpace(k: Kernel, pages = 4): { pid: number; fd: number; gpa: number; hva: number } {
  const { pid } = k.createProcess('vmm');
  const fd = k.openIoasid(pid);
  const hva = k.mmap(pid, pages * PAGE);
  const gpa = k.alloc(pid, fd);
  k.bindPgtbl(pid, fd, gpa, { kind: 'iova' });
  k.map(pid, fd, gpa, { iova: 0, hva, length: pages * PAGE, read: true, write: true });
  return { pid, fd, gpa, hva };
}
