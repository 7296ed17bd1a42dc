// The host kernel's whole command table: every operation of every object kind, by name. The dispatcher
// serves any of them; this list is what the REST adapter, the in-process adapter and the tests draw from.
import type { HostOperation } from '@app/shared/contract/operations';
import { cpuOps } from './cpu/cpu.ops';
import type { Op, OpCall } from './dispatch/op';
import { faultOps } from './fault/fault.ops';
import { hwOps } from './hw/hw.ops';
import { ioasidOps } from './ioasid/ioasid.ops';
import type { Kernel } from './kernel';
import { kvmOps } from './kvm/kvm.ops';
import type { Process } from './process/process';
import { processOps } from './process/process.ops';
import { vfioOps } from './vfio/vfio.ops';

export { cpuOps, faultOps, hwOps, ioasidOps, kvmOps, processOps, vfioOps };

/** A kind's table, checked: its handlers' view of the kernel (their `Deps`) must be something Kernel is. */
function checked<T extends Record<string, { run: (c: OpCall<Kernel, never, Process>, a: never) => unknown }>>(table: T): T {
  return table;
}

const tables = [checked(processOps), checked(cpuOps), checked(ioasidOps), checked(faultOps), checked(vfioOps), checked(kvmOps), checked(hwOps)];

/** Every row, keyed by operation name. */
export const HOST_OPS: ReadonlyMap<HostOperation, Op<never, never, unknown, never, never>> = new Map(
  tables.flatMap((t) => Object.values(t) as unknown as Op<never, never, unknown, never, never>[]).map((o) => [o.name, o]),
);
