// The accelerator driver's test bed (accel-driver*.spec.ts): a booted guest OS on the in-process stack, its page
// request handler, one process, and drivers whose every yield lets the device's engine run.
import type { Descriptor, EnqcmdResult } from '@app/shared/contract/host-kernel';
import { type FailWhen, failWhen } from '../../../../stack/fail-when';
import { STACK_DEVICES } from '../../../../stack/in-process-stack';
import { handlePageRequest } from '../iommu/page-fault';
import { SvaDriver } from '../iommu/sva';
import { FrameAllocator } from '../mm/frame-allocator';
import { GuestMm } from '../mm/guest-mm';
import { DSA0, tick, VmOnStack } from '../../../../stack/fixtures/vm-on-stack';
import type { VirtualPageRequest, VmmPort } from '../vmm.port';
import { AccelDriver, type AccelOptions } from './accel-driver';

type CpuPort = Pick<VmmPort, 'wrmsr' | 'enqcmd'>;

export interface DriverOptions extends Omit<AccelOptions, 'yield'> {
  /** Runs at each of the driver's yields, before it lets the engine tick. */
  onYield?: () => Promise<void> | void;
  port?: CpuPort;
}

export interface Setup {
  bed: VmOnStack;
  /** The guest's door as the drivers see it: every call logged. */
  door: FailWhen<VmmPort>;
  mm: GuestMm;
  sva: SvaDriver;
  vrid: number;
  pid: number;
  /** An accelerator driver of this OS; each yield lets macrotasks (the device's engine) run. */
  driver(opts?: DriverOptions): AccelDriver;
}

/** A 2 MiB VM with 2 vCPUs and DSA0 (and more devices if asked), one process. wqDepth: of every host device. */
export async function setup(o: { devices?: string[]; wqDepth?: number } = {}): Promise<Setup> {
  const hostDevices = o.wqDepth === undefined ? undefined : STACK_DEVICES.map((d) => ({ ...d, wqDepth: o.wqDepth as number }));
  const bed = await VmOnStack.start({ memoryMiB: 2, vcpus: 2, devices: o.devices ?? [DSA0] }, { devices: hostDevices });
  const door = failWhen<VmmPort>(bed.port);
  const frames = new FrameAllocator(bed.ramBytes);
  const mm = new GuestMm(door.port, frames);
  const sva = new SvaDriver(door.port, frames, mm);
  await sva.boot(bed.machine.devices.map((d) => d.vrid));
  // The guest's page request handler, as the booted OS runs it: the device's page requests for untouched pages.
  const lifeline = door.port.holdLifeline({
    onEvent: (e) => {
      if (e.event !== 'page-request') return;
      const pr = e.data as VirtualPageRequest;
      void handlePageRequest(sva, mm, pr).then(({ code }) => door.port.pageResponse({ vrid: pr.vrid, vpasid: pr.vpasid, grpid: pr.grpid, code }));
    },
  });
  await lifeline.opened;
  const p = await mm.createProcess('app');
  const driver = (opts: DriverOptions = {}): AccelDriver => {
    const { onYield, port, ...rest } = opts;
    return new AccelDriver(port ?? door.port, mm, sva, {
      ...rest,
      yield: async () => {
        await onYield?.();
        await tick();
      },
    });
  };
  return { bed, door, mm, sva, vrid: bed.vrid(DSA0), pid: p.pid, driver };
}

/** The ENQCMDs the VMM ran on vCPU n, oldest first, from its journal. */
export async function enqcmds(bed: VmOnStack, n = 0): Promise<Array<{ descriptor: Descriptor; result: EnqcmdResult }>> {
  const rows = await bed.vmmRows('vcpu.enqcmd');
  return rows
    .filter((r) => r.object === `vcpu:${bed.vm.id}/${n}`)
    .map((r) => ({ descriptor: (r.args as { descriptor: Descriptor }).descriptor, result: r.result as EnqcmdResult }));
}

export async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000 && !cond(); i++) await tick();
  if (!cond()) throw new Error(`never happened: ${what}`);
}

/** A fill pattern is 8 bytes, little-endian: byte i of the destination is byte i % 8 of the pattern (DSA). */
export function filled(pattern: number, length: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(pattern));
  return Buffer.from(Array.from({ length }, (_, i) => b[i % 8]));
}

/**
 * The work queue of DSA0 holds one descriptor, and it is taken: another process's noop, submitted on vCPU 1,
 * which the stalled engine keeps queued. `resume` runs the engine again; the occupant polls only after it.
 */
export async function occupyQueue(s: Setup): Promise<{ occupant: Promise<unknown>; resume: () => Promise<void> }> {
  const other = (await s.mm.createProcess('occupant')).pid;
  await s.sva.bind(other, s.vrid);
  await s.bed.setEngine(DSA0, false);
  let open!: () => void;
  const resumed = new Promise<void>((resolve) => (open = resolve));
  const occupant = s.driver({ onYield: () => resumed }).submit(other, s.vrid, { op: 'noop' }, 1);
  await until(() => s.bed.accelerator(DSA0).full, 'the work queue is full');
  return {
    occupant,
    resume: async () => {
      await s.bed.setEngine(DSA0, true);
      open();
    },
  };
}
