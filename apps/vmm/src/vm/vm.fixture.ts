// Shared set-up of the vIOMMU unit tests: a VM built with VmBuilder on the real host kernel (in process, see
// ../host-kernel.fixture.ts), two devices with registered PASID directories, and helpers writing guest PASID
// entries into guest RAM through the VM's own port, as the guest's writes reach it.
import type { Timers } from '@app/shared/timers';
import { encodePasidDirEntry, encodePasidEntry, PasidEntry, pasidDirEntryOffset, pasidTableEntryOffset } from '@app/shared/vtd/pasid-entry';
import { IA32_PASID_VALID } from '@app/shared/x86/msr.constants';
import type { DeviceConfig } from '../../../host-kernel/src/kernel';
import type { KernelState } from '../../../host-kernel/src/kernel-state';
import { type HostFixture, openHost } from '../host-kernel.fixture';
import type { HostKernelPort } from '../host-kernel.port';
import { MIB } from '../machine/machine';
import { Vm, VmBuilder, VmSpec } from './vm-builder';

export { closeHosts } from '../host-kernel.fixture';

export const DEV = (bdf: string, pasidWidth = 20): DeviceConfig => ({ bdf, vendorId: 0x8086, deviceId: 0x0b25, pasidWidth, wqDepth: 32 });
export const BDF_A = '0000:6a:01.0';
export const BDF_B = '0000:6b:01.0';
/** Two more accelerators on the host, for a second VM. */
export const OTHER_BDFS = ['0000:6c:01.0', '0000:6d:01.0'];
export const SPEC: VmSpec = { name: 'vm', memoryMiB: 2, vcpus: 1, devices: [BDF_A, BDF_B] };
export const RAM = SPEC.memoryMiB * MIB;
export const VRID_A = 0x08;
export const VRID_B = 0x10;
export const DIR_A = 0x1000;
export const DIR_B = 0x2000;
export const TABLE_A = 0x3000;
export const TABLE_B = 0x4000;
export const CR3 = 0x10000;

export interface Setup {
  host: HostFixture;
  vm: Vm;
  builder: VmBuilder;
  /** The host's state once the VM is built and its contexts registered. */
  baseline: KernelState;
}

/**
 * A fresh host (device B of `widthB` PASID bits; its timers, PRQ depth), the VM on it (its guest page request
 * queue depth), both contexts registered; the door log is empty.
 */
export async function setup(
  opts: { quota?: number; widthB?: number; timers?: Timers; prqDepth?: number; guestPrqDepth?: number; wrapHost?: (port: HostKernelPort) => HostKernelPort } = {},
): Promise<Setup> {
  const host = await openHost({ devices: [DEV(BDF_A), DEV(BDF_B, opts.widthB ?? 20), ...OTHER_BDFS.map((b) => DEV(b))], memoryMiB: 64, timers: opts.timers, prqDepth: opts.prqDepth });
  const builder = new VmBuilder(opts.wrapHost ? opts.wrapHost(host.port) : host.port);
  const vm = await builder.build({ ...SPEC, pasidQuota: opts.quota, prqDepth: opts.guestPrqDepth });
  await vm.viommu.setContext(VRID_A, DIR_A);
  await vm.viommu.setContext(VRID_B, DIR_B);
  host.resetCalls();
  return { host, vm, builder, baseline: host.state() };
}

export function writeRam(vm: Vm, gpa: number, data: Buffer): Promise<void> {
  return vm.port.writeGuestMemory(vm.handles.vmFd, gpa, data);
}

export function writeU64(vm: Vm, gpa: number, value: bigint): Promise<void> {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(value);
  return writeRam(vm, gpa, b);
}

/** Points directory entry `vpasid >> 6` of `dir` at `table` and writes entry `vpasid & 0x3f` there. */
export async function writeEntry(vm: Vm, dir: number, table: number, vpasid: number, e: PasidEntry | Buffer): Promise<void> {
  await writeU64(vm, dir + pasidDirEntryOffset(vpasid), encodePasidDirEntry({ present: true, tableGpa: table }));
  await writeRam(vm, table + pasidTableEntryOffset(vpasid), Buffer.isBuffer(e) ? e : encodePasidEntry(e));
}

export const FL = (flptr = CR3): PasidEntry => ({ present: true, pgtt: 1, flpm: 0, flptr });
export const CLEAR: PasidEntry = { present: false, pgtt: 0, flpm: 0, flptr: 0 };
export const cacheWait = (vpasid: number) => [{ type: 'pasid-cache', vpasid }, { type: 'wait' }];

/** The host journal's names of the mirroring steps (DESIGN §4), so expectations read like the design. */
export const ALLOC = 'ioasid.alloc';
export const BIND = 'ioasid.bind_pgtbl';
export const ALLOW = 'vfio.allow_ioasid';
export const MAP_PASID = 'kvm.map_pasid';
export const UNMAP_PASID = 'kvm.unmap_pasid';
export const DISALLOW = 'vfio.disallow_ioasid';
export const DESTROY = 'ioasid.destroy';
export const SETUP = [ALLOC, BIND, ALLOW, MAP_PASID];
export const TEARDOWN = [UNMAP_PASID, DISALLOW, DESTROY];

/** The host device fd behind a virtual RID of `vm`. */
export function deviceFd(vm: Vm, vrid: number): number {
  const fd = vm.handles.devices.find((d) => d.vrid === vrid)?.deviceFd;
  if (fd === undefined) throw new Error(`vm ${vm.name} has no device at vrid 0x${vrid.toString(16)}`);
  return fd;
}

/**
 * The guest's device faults: a block-on-fault memmove on vrid's device, tagged with `vpasid` (WRMSR + ENQCMD on
 * vCPU 0), from `gva` to the next page, its record on the page after; with nothing mapped at CR3 every page is
 * missing: one page request group of 3 requests. Resolves once the host holds the group.
 */
export async function faultingCopy(host: HostFixture, vm: Vm, vrid: number, vpasid: number, gva = 0x7f00_0000_0000): Promise<void> {
  const held = host.state().pageRequests.length;
  await vm.port.vcpuWrmsr(vm.handles.vmFd, vm.handles.vcpus[0], (IA32_PASID_VALID | vpasid) >>> 0);
  const r = await vm.port.vcpuEnqcmd(vm.handles.vmFd, vm.handles.vcpus[0], deviceFd(vm, vrid), { op: 'memmove', src: gva, dst: gva + 0x1000, length: 16, completion: gva + 0x2000, blockOnFault: true });
  if (r.result !== 'accepted') throw new Error(`ENQCMD: ${JSON.stringify(r)}`);
  for (let i = 0; i < 100 && host.state().pageRequests.length === held; i++) await new Promise((resolve) => setImmediate(resolve));
  if (host.state().pageRequests.length === held) throw new Error('the device sent no page request');
}
