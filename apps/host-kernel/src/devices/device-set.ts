import type { FaultRecord } from '@app/shared/contract/host-kernel';
import { KernelError } from '@app/shared/errno';
import type { Timers } from '@app/shared/timers';
import { PASID_LIMIT } from '@app/shared/vtd/vtd.constants';
import type { Iommu } from '../iommu/iommu';
import { faultReasonOf } from '../iommu/translate';
import { MEMORY_IO_MAX } from '../memory/memory.constants';
import type { DeviceConfig } from '../vfio/vfio-device';
import type { Tx } from '../fault-injection';
import { Accelerator, type AcceleratorEvent, type AcceleratorStats } from './accelerator';
import type { FrameMemory } from './dsa-ops';

export interface EngineOptions {
  /** Start every engine stalled (tests; step() or setEngine to run). */
  paused?: boolean;
  /** Runs an engine tick later; default setImmediate. */
  scheduler?: (run: () => void) => void;
  /** Where a device's page-request back-off waits come from (the kernel's timers). */
  timers?: Timers;
}

export interface RawDma {
  /** null or 0: a request without PASID (the RID route) */
  pasid: number | null;
  address: number;
  length: number;
  write: boolean;
  data?: Buffer;
  /** PR bit: a supervisor-mode request (only meaningful with a PASID); default false, a user-mode request */
  privileged?: boolean;
}

export type RawDmaResult = { ok: true; data?: Buffer } | { ok: false; fault: FaultRecord };

interface PciFunction {
  config: DeviceConfig;
  accelerator: Accelerator;
}

/**
 * The PCI accelerators of the machine, one per configured device: each has its work-queue portal (ENQCMD
 * target) and reaches memory only through the IOMMU, tagged with its bdf and the submitter's PASID.
 */
export class DeviceSet {
  private readonly functions = new Map<string, PciFunction>();

  constructor(
    configs: DeviceConfig[],
    private readonly iommu: Iommu,
    engine: EngineOptions,
    onEvent: (bdf: string, event: AcceleratorEvent) => void,
    memory: FrameMemory,
    /** Whether the kernel's events have a listener now (the engines build theirs only then). */
    listening: () => boolean = () => true,
  ) {
    for (const config of configs) {
      const bdf = config.bdf;
      const accelerator = new Accelerator({
        wqDepth: config.wqDepth,
        paused: engine.paused,
        scheduler: engine.scheduler,
        timers: engine.timers,
        dma: {
          translate: (ppasid, address, _length, write, privileged) => iommu.translatePage(bdf, ppasid, address, write, privileged),
          faultReason: faultReasonOf,
          memory,
          probe: (ppasid, address, write, privileged) => iommu.probe(bdf, ppasid, address, write, privileged),
          pageRequest: (ppasid, grpid, requests, respond) => iommu.pageRequest(bdf, ppasid, grpid, requests, respond),
        },
        onEvent: (e) => onEvent(bdf, e),
        listening,
      });
      this.functions.set(bdf, { config, accelerator });
    }
  }

  accelerator(bdf: string): Accelerator {
    return this.fn(bdf).accelerator;
  }

  /** A device with a PASID capability can tag requests with a PASID (and so take ENQCMD work). */
  pasidCapable(bdf: string): boolean {
    return this.fn(bdf).config.pasidWidth > 0;
  }

  /**
   * The VFIO drain hook: the route's pending page requests are answered invalid (Iommu.drainWith), then its queued
   * work is finished or aborted, records written while the route still translates.
   */
  drain(bdf: string, ppasid: number | null): number {
    const accelerator = this.fn(bdf).accelerator;
    let aborted = 0;
    this.iommu.drainWith(bdf, ppasid, () => (aborted = accelerator.drainPasid(ppasid)));
    return aborted;
  }

  /** VFIO's reset hook: function-level reset of the device (queued work dropped, no records), undone on rollback. */
  reset(tx: Tx, bdf: string): void {
    const accelerator = this.fn(bdf).accelerator;
    tx.do('device.reset', () => accelerator.reset(), (saved) => accelerator.unreset(saved));
  }

  /** Abort ppasid's queued work on every device (records written while routes still exist); returns the count. */
  drainEverywhere(ppasid: number): number {
    let aborted = 0;
    for (const bdf of this.functions.keys()) if (this.fn(bdf).accelerator.queuedFor(ppasid) > 0) aborted += this.drain(bdf, ppasid);
    return aborted;
  }

  engineRunning(bdf: string): boolean {
    return !this.fn(bdf).accelerator.paused;
  }

  setEngine(bdf: string, running: boolean): void {
    if (typeof running !== 'boolean') throw new KernelError('EINVAL', `engine running must be a boolean`);
    const accelerator = this.fn(bdf).accelerator;
    if (running) accelerator.resume();
    else accelerator.pause();
  }

  /** A raw device-initiated access (admin), through the IOMMU like any DMA of this device. */
  dma(bdf: string, req: RawDma): RawDmaResult {
    const f = this.fn(bdf);
    const pasid = req.pasid === null || req.pasid === 0 ? null : req.pasid;
    if (pasid !== null) {
      if (!Number.isInteger(pasid) || pasid < 0 || pasid >= PASID_LIMIT) throw new KernelError('EINVAL', `PASID ${pasid} is outside [0, 2^20)`);
      if (f.config.pasidWidth === 0) throw new KernelError('EINVAL', `device ${bdf} has no PASID capability: it cannot tag a request with PASID ${pasid}`);
      if (pasid >= 2 ** f.config.pasidWidth) throw new KernelError('EINVAL', `PASID ${pasid} exceeds device ${bdf}'s ${f.config.pasidWidth}-bit PASID width`);
    }
    if (typeof req.write !== 'boolean') throw new KernelError('EINVAL', `write must be a boolean`);
    if (req.privileged !== undefined && typeof req.privileged !== 'boolean') throw new KernelError('EINVAL', `privileged must be a boolean`);
    if (!Number.isSafeInteger(req.length) || req.length < 0 || req.length > MEMORY_IO_MAX) {
      throw new KernelError('EINVAL', `DMA length ${req.length} is outside [0, ${MEMORY_IO_MAX}]`);
    }
    if (!req.write && req.data !== undefined) throw new KernelError('EINVAL', `a DMA read takes no data`);
    // PCIe carries PR only in a PASID prefix: a request without PASID is never privileged.
    const r = this.iommu.access(bdf, pasid, req.address, req.length, req.write, req.data, pasid !== null && req.privileged === true);
    return r.ok ? r : { ok: false, fault: r.fault };
  }

  /** Each function's work-queue counters, in bdf order (metrics, /ui). */
  stats(): Array<{ bdf: string } & AcceleratorStats> {
    return [...this.functions.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([bdf, f]) => ({ bdf, ...f.accelerator.stats }));
  }

  private fn(bdf: string): PciFunction {
    const f = this.functions.get(bdf);
    if (!f) throw new KernelError('ENODEV', `no device ${bdf}`);
    return f;
  }
}
