// The machine description the guest sees: RAM size, vCPU count and devices known only by virtual RID.
// Virtual RIDs are assigned in the order the devices were listed: the n-th device (n = 0, 1, …) is
// bus 0, device n+1, function 0, i.e. vrid = (n + 1) << 3 = 0x0008, 0x0010, 0x0018, … (as QEMU's q35
// puts assigned devices in slots after the host bridge). Deterministic: the same list gives the same vrids.
import { KernelError } from '@app/shared/errno';
import { BDF_PATTERN } from '@app/shared/pci/pci.constants';
import {
  FIRST_VIRTUAL_DEVICE,
  MAX_MEMORY_MIB,
  MAX_VCPUS,
  MAX_VIRTUAL_DEVICE,
  MIN_MEMORY_MIB,
  RID_BUS_SHIFT,
  RID_DEVICE_SHIFT,
  VIRTUAL_BUS,
} from './machine.constants';

export interface MachineDevice {
  vrid: number;
  bdf: string;
}

export interface Machine {
  memoryMiB: number;
  vcpus: number;
  devices: MachineDevice[];
}

export interface MachineSpec {
  memoryMiB: number;
  vcpus: number;
  /** Host BDFs to assign, in slot order. */
  devices: string[];
}

export const MIB = 1024 * 1024;

/** 16-bit RID of bus/device/function. */
export function encodeRid(bus: number, device: number, fn: number): number {
  return (bus << RID_BUS_SHIFT) | (device << RID_DEVICE_SHIFT) | fn;
}

/** "00:01.0" — how the guest would print a virtual RID. */
export function formatRid(rid: number): string {
  const hex = (n: number): string => n.toString(16).padStart(2, '0');
  return `${hex(rid >> RID_BUS_SHIFT)}:${hex((rid >> RID_DEVICE_SHIFT) & 0x1f)}.${rid & 0x7}`;
}

/** Validates a VM spec and assigns virtual RIDs; throws EINVAL naming the bad field. */
export function describeMachine(spec: MachineSpec): Machine {
  if (!Number.isInteger(spec.memoryMiB) || spec.memoryMiB < MIN_MEMORY_MIB || spec.memoryMiB > MAX_MEMORY_MIB) {
    throw new KernelError('EINVAL', `memoryMiB ${spec.memoryMiB} is not an integer in [${MIN_MEMORY_MIB}, ${MAX_MEMORY_MIB}]`);
  }
  if (!Number.isInteger(spec.vcpus) || spec.vcpus < 1 || spec.vcpus > MAX_VCPUS) {
    throw new KernelError('EINVAL', `vcpus ${spec.vcpus} is not an integer in [1, ${MAX_VCPUS}]`);
  }
  const slots = MAX_VIRTUAL_DEVICE - FIRST_VIRTUAL_DEVICE + 1;
  if (spec.devices.length > slots) {
    throw new KernelError('EINVAL', `${spec.devices.length} devices do not fit the ${slots} slots of virtual bus 0`);
  }
  const seen = new Set<string>();
  const devices = spec.devices.map((bdf, n) => {
    if (typeof bdf !== 'string' || !BDF_PATTERN.test(bdf)) throw new KernelError('EINVAL', `device "${bdf}" is not a BDF like 0000:6a:01.0`);
    if (seen.has(bdf)) throw new KernelError('EINVAL', `device ${bdf} is listed twice`);
    seen.add(bdf);
    return { vrid: encodeRid(VIRTUAL_BUS, FIRST_VIRTUAL_DEVICE + n, 0), bdf };
  });
  return { memoryMiB: spec.memoryMiB, vcpus: spec.vcpus, devices };
}

export function ramBytes(machine: Pick<Machine, 'memoryMiB'>): number {
  return machine.memoryMiB * MIB;
}
