// The host kernel's parts and how they are wired: physical memory, the process table, /dev/ioasid, the
// IOMMU, the accelerators, VFIO and KVM. Nothing here is an operation: every call is a row of an object
// kind's command table (*.ops.ts), issued through dispatch/.
import type { DeviceConfig } from './vfio/vfio-device';
import { type AcceleratorEvent } from './devices/accelerator';
import { DeviceSet, type EngineOptions } from './devices/device-set';
import type { FaultInjector, TxEvent } from './fault-injection';
import { Iommu } from './iommu/iommu';
import { type InvalidateRequest, IoasidLayer } from './ioasid/ioasid-layer';
import { PASID_BITS } from '@app/shared/vtd/vtd.constants';
import { realTimers, type Timers } from '@app/shared/timers';
import { memoryFiles, type MemFileBackend } from '@app/shared/memory/mem-file';
import type { PageTableHandle } from './ioasid/pgtbl';
import { Kvm } from './kvm/kvm';
import { DEFAULT_LIMITS, type Limits } from './limits/limits';
import { PhysicalMemory } from './memory/physical-memory';
import { ProcessTable } from './process/process-table';
import type { DrainHook } from './vfio/vfio-device-file';
import { VfioDevices } from './vfio/vfio-devices';

export type { DeviceConfig } from './vfio/vfio-device';

/** Something the kernel reports: journaled (with the call it happened in, or on its own) and sent to the owner's lifeline. */
export type KernelEvent = TxEvent;

export interface KernelOptions {
  memoryMiB: number;
  devices: DeviceConfig[];
  firstPid?: number;
  /** The IOMMU's PASID width (VT-d ECAP.PSS + 1), 1..20; default 20. */
  pasidBits?: number;
  faults?: FaultInjector;
  onEvent?: (e: KernelEvent) => void;
  /** Observer called after the data plane drained a route (disallow/destroy/close, before the route goes). */
  drain?: DrainHook;
  /** Observer of IOTLB flush requests (UNMAP, INVALIDATE, DESTROY), after the IOTLB was flushed. */
  onInvalidate?: (req: InvalidateRequest) => void;
  /** The accelerators' engines: start stalled, custom scheduler (tests). */
  engine?: EngineOptions;
  /** Where process tokens come from (default random). */
  newToken?: () => string;
  /** Where waits come from (page request timeouts, device retry back-off): real timers unless deterministic. */
  timers?: Timers;
  /** Host page request queue depth in requests (PRQ_DEPTH, default 2048) and PRQ_TIMEOUT_MS (default 10000). */
  prqDepth?: number;
  prqTimeoutMs?: number;
  /** Per-process resource limits (limits/limits.ts; default DEFAULT_LIMITS). */
  limits?: Limits;
  /** What backs shared mappings (guest RAM): POSIX shared memory across processes, Buffers in one (the default). */
  memFiles?: MemFileBackend;
}

/** The kernel's onEvent when nobody listens: the data plane then builds no event at all. */
const IGNORE = (): void => undefined;

export class Kernel {
  readonly memory: PhysicalMemory;
  readonly procs: ProcessTable;
  readonly ioasids: IoasidLayer;
  readonly iommu: Iommu;
  readonly accelerators: DeviceSet;
  readonly vfio: VfioDevices;
  readonly kvm = new Kvm();
  readonly faults?: FaultInjector;
  readonly limits: Limits;
  readonly memFiles: MemFileBackend;
  /** Where events go; the dispatcher of a running host kernel replaces it. */
  onEvent: (e: KernelEvent) => void;

  constructor(opts: KernelOptions) {
    this.memory = new PhysicalMemory(opts.memoryMiB);
    this.limits = opts.limits ?? DEFAULT_LIMITS;
    this.memFiles = opts.memFiles ?? memoryFiles;
    this.procs = new ProcessTable(this.memory, opts.firstPid ?? 100, opts.newToken, this.limits, this.memFiles);
    this.faults = opts.faults;
    this.onEvent = opts.onEvent ?? IGNORE;
    const timers = opts.timers ?? realTimers;
    this.iommu = new Iommu({
      memory: this.memory,
      onFault: (f, route) => this.onEvent({ kind: 'fault', ...this.ownerOf(f.bdf, route), ...f }),
      onPageEvent: (e, route) => this.onEvent({ ...this.ownerOf(e.bdf, route), ...e }),
      prqDepth: opts.prqDepth,
      prqTimeoutMs: opts.prqTimeoutMs,
      timers,
    });
    const drain: DrainHook = (bdf, ppasid) => {
      this.accelerators.drain(bdf, ppasid);
      opts.drain?.(bdf, ppasid);
    };
    this.vfio = new VfioDevices(opts.devices, this.iommu.table, drain, (tx, bdf) => this.accelerators.reset(tx, bdf));
    for (const device of this.vfio.all()) this.iommu.addDevice(device.bdf);
    this.ioasids = new IoasidLayer(
      this.memory,
      {
        onInvalidate: (req) => {
          this.iommu.invalidate(req);
          opts.onInvalidate?.(req);
        },
        drainPasid: (ppasid) => void this.accelerators.drainEverywhere(ppasid),
      },
      2 ** (opts.pasidBits ?? PASID_BITS),
      this.limits.pasids,
    );
    this.accelerators = new DeviceSet(
      this.vfio.all().map((d) => d.config),
      this.iommu,
      { timers, ...opts.engine },
      (bdf, e) => this.deviceEvent(bdf, e),
      this.memory,
      () => this.onEvent !== IGNORE,
    );
  }

  /** Who hears about a device's event: the owner of the route's ioasid, else the process that has the device open. */
  private ownerOf(bdf: string, route: PageTableHandle | null): { pid?: number } {
    const pid = route ? this.ioasids.get(route.ppasid)?.owner.pid : this.vfio.all().find((d) => d.bdf === bdf)?.openedBy?.pid;
    return pid === undefined ? {} : { pid };
  }

  private deviceEvent(bdf: string, e: AcceleratorEvent): void {
    const { kind, ...rest } = e;
    // A drain's own events arrive while the route is blocked: find() still names its table.
    this.onEvent({ kind: `device-${kind}`, ...this.ownerOf(bdf, this.iommu.table.find(bdf, e.ppasid)?.pgtbl ?? null), bdf, ...rest });
  }
}
