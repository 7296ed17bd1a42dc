// Shared set-up of the vIOMMU unit tests: a VM built on the fake host kernel, two devices with registered
// PASID directories, and helpers writing guest PASID entries straight into guest RAM.
import { encodePasidDirEntry, encodePasidEntry, PasidEntry, pasidDirEntryOffset, pasidTableEntryOffset } from '@app/shared/vtd/pasid-entry';
import { FakeHostKernel } from '../vm/fake-host-kernel';
import { Vm, VmBuilder, VmSpec } from '../vm/vm-builder';

export const DEV = (bdf: string, pasidWidth = 20) => ({ bdf, vendorId: 0x8086, deviceId: 0x0b25, pasidWidth, wqDepth: 32 });
export const SPEC: VmSpec = { name: 'vm', memoryMiB: 2, vcpus: 1, devices: ['0000:6a:01.0', '0000:6b:01.0'] };
export const RAM = 2 * 1024 * 1024;
export const VRID_A = 0x08;
export const VRID_B = 0x10;
export const DIR_A = 0x1000;
export const DIR_B = 0x2000;
export const TABLE_A = 0x3000;
export const TABLE_B = 0x4000;
export const CR3 = 0x10000;

export async function setup(opts: { quota?: number; widthB?: number } = {}): Promise<{ hk: FakeHostKernel; vm: Vm; builder: VmBuilder }> {
  const hk = new FakeHostKernel([DEV('0000:6a:01.0'), DEV('0000:6b:01.0', opts.widthB ?? 20)]);
  const builder = new VmBuilder(hk);
  const vm = await builder.build({ ...SPEC, pasidQuota: opts.quota });
  await vm.viommu.setContext(VRID_A, DIR_A);
  await vm.viommu.setContext(VRID_B, DIR_B);
  hk.calls.length = 0;
  hk.log.length = 0;
  return { hk, vm, builder };
}

export function ram(hk: FakeHostKernel, vm: Vm, gpa: number, len: number): Buffer {
  return hk.guestRam(vm.handles.vmFd, gpa, len);
}

export function writeEntry(hk: FakeHostKernel, vm: Vm, dir: number, table: number, vpasid: number, e: PasidEntry | Buffer): void {
  ram(hk, vm, dir + pasidDirEntryOffset(vpasid), 8).writeBigUInt64LE(encodePasidDirEntry({ present: true, tableGpa: table }));
  (Buffer.isBuffer(e) ? e : encodePasidEntry(e)).copy(ram(hk, vm, table + pasidTableEntryOffset(vpasid), 64));
}

export const FL = (flptr = CR3): PasidEntry => ({ present: true, pgtt: 1, flpm: 0, flptr });
export const CLEAR: PasidEntry = { present: false, pgtt: 0, flpm: 0, flptr: 0 };
export const cacheWait = (vpasid: number) => [{ type: 'pasid-cache', vpasid }, { type: 'wait' }];
