// The hardware/admin plane (admin token): the PASID pool, the page request queue, the IOMMU fault log, raw device
// DMA, engine control, and
// every process's usage against its resource limits.
import type { FaultRecord } from '@app/shared/contract/host-kernel';
import type { DeviceSet, RawDmaResult } from '../devices/device-set';
import type { KernelFile } from '../process/fd-table';
import type { Process } from '../process/process';
import { type OpCall, opsFor } from '../dispatch/op';
import type { IoasidLayer, PasidInfo } from '../ioasid/ioasid-layer';
import type { Iommu } from '../iommu/iommu';
import type { Limits } from '../limits/limits';
import { limitsView, type LimitsView } from './limits-view';
import type { ProcessTable } from '../process/process-table';

interface Deps {
  ioasids: IoasidLayer;
  iommu: Iommu;
  accelerators: DeviceSet;
  procs: ProcessTable;
  limits: Limits;
}

const op = opsFor<Deps, Process>();
type C<F extends KernelFile = never> = OpCall<Deps, F, Process>;

export const hwOps = {
  /** Pool counts, or with `pasid` the state, owner and holders of one host PASID. */
  pasids: op({
    name: 'hw.pasids',
    permit: 'admin',
    journal: false,
    run: ({ k }: C, a: { pasid?: number }): PasidInfo | { allocated: number; parked: number; free: number } =>
      a.pasid === undefined ? k.ioasids.pasidPool() : k.ioasids.pasidInfo(a.pasid),
  }),

  /** The host page request queue: its depth, what it holds, overflows, and every group still waiting for an answer. */
  pageRequests: op({
    name: 'hw.page_requests',
    permit: 'admin',
    journal: false,
    run: ({ k }: C, _a: Record<string, never>) => ({ ...k.iommu.prq.stats(), groups: k.iommu.prq.pendingGroups() }),
  }),

  /** The limits in force and each running process's usage of them (with `pid`, that process's). */
  limits: op({
    name: 'hw.limits',
    permit: 'admin',
    journal: false,
    run: ({ k }: C, a: { pid?: number }): LimitsView => limitsView(k, a.pid),
  }),

  /** The IOMMU fault log, oldest first. */
  faults: op({
    name: 'hw.faults',
    permit: 'admin',
    journal: false,
    run: ({ k }: C, _a: Record<string, never>): FaultRecord[] => k.iommu.faults(),
  }),

  /**
   * A raw device-initiated access, through the IOMMU like any other (a misbehaving device). What the device did
   * is hardware's, not a kernel state change: the row records it, a failed append cannot undo it.
   */
  dma: op({
    name: 'hw.dma',
    permit: 'admin',
    journal: true,
    run: ({ k }: C, a: { bdf: string; pasid?: number; address: number; length: number; write: boolean; data?: Buffer; privileged?: boolean }): RawDmaResult =>
      k.accelerators.dma(a.bdf, { pasid: a.pasid ?? null, address: a.address, length: a.length, write: a.write, data: a.data, privileged: a.privileged ?? false }),
    object: (a) => `device:${a.bdf}`,
    args: (a) => ({ bdf: a.bdf, pasid: a.pasid, address: a.address, length: a.length, write: a.write, privileged: a.privileged, dataLength: a.data?.length }),
    result: (r) => (r.ok ? { ok: true } : { fault: r.fault }),
  }),

  /** Stalls or resumes a device's engine (to fill its queue, or catch a descriptor in flight). */
  engine: op({
    name: 'hw.engine',
    permit: 'admin',
    journal: true,
    run: ({ k, tx }: C, a: { bdf: string; running: boolean }) => {
      const was = k.accelerators.engineRunning(a.bdf);
      tx.do('hw.engine', () => k.accelerators.setEngine(a.bdf, a.running), () => k.accelerators.setEngine(a.bdf, was));
    },
    object: (a) => `device:${a.bdf}`,
  }),
};
