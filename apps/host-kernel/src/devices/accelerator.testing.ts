// Test support for the accelerator specs (not used by production code): a device on a DMA port of identity-mapped
// iova spaces, its page request groups kept for the test to answer, and timers the test fires by hand.
import { decodeCompletion } from '@app/shared/dsa/descriptor';
import { HandTimers } from '@app/shared/hand-timers.testing';
import { Iotlb } from '../iommu/iotlb';
import { dmaAccess, type PageTableView, type PhysicalMemoryPort, translate } from '../iommu/translate';
import type { PageRequest, PageResponseCode } from '../ioasid/pgtbl';
import { Accelerator, type AcceleratorEvent, type DmaPort } from './accelerator';

export class FakePhys implements PhysicalMemoryPort {
  readonly mem = Buffer.alloc(0x40000);
  read(hpa: number, length: number): Buffer {
    return Buffer.from(this.mem.subarray(hpa, hpa + length));
  }
  write(hpa: number, data: Buffer): void {
    data.copy(this.mem, hpa);
  }
}

/** A page request group the device sent, and how to answer it. */
export interface SentGroup {
  ppasid: number | null;
  grpid: number;
  requests: PageRequest[];
  respond(code: PageResponseCode): void;
}

/**
 * One identity-mapped iova space per PASID over pages [0, 0x40000), with holes on request. A hole is not present
 * in the second stage, so it is what a page request can ask for; the groups the device sends wait in `groups`.
 */
export function rig(options: { wqDepth?: number; paused?: boolean } = {}) {
  const phys = new FakePhys();
  const holes = new Set<number>();
  const routes = new Map<number | null, PageTableView>();
  const view = (id: number): PageTableView => ({
    kind: 'iova',
    id,
    destroyed: false,
    lookup: (iova) => (iova < phys.mem.length && !holes.has(iova) ? { hpa: iova, read: true, write: true } : null),
  });
  routes.set(5, view(5));
  routes.set(null, view(0));
  const tlb = new Iotlb();
  const log: Array<{ ppasid: number | null; address: number; length: number; write: boolean; privileged?: boolean }> = [];
  const groups: SentGroup[] = [];
  const dma: DmaPort = {
    access(ppasid, address, length, write, data, privileged) {
      log.push({ ppasid, address, length, write, ...(privileged ? { privileged } : {}) });
      return dmaAccess(routes.get(ppasid) ?? null, address, length, write, data, phys, tlb, privileged);
    },
    probe(ppasid, address, write, privileged) {
      const t = translate(routes.get(ppasid) ?? null, address, { write, privileged }, phys, tlb);
      return t.ok ? { ok: true } : { ok: false, recoverable: t.reason === 'sl-not-present' };
    },
    pageRequest: (ppasid, grpid, requests, respond) => void groups.push({ ppasid, grpid, requests, respond }),
  };
  const events: AcceleratorEvent[] = [];
  const timers = new HandTimers();
  const dev = new Accelerator({ dma, wqDepth: options.wqDepth ?? 4, paused: options.paused ?? true, onEvent: (e) => events.push(e), timers });
  const record = (at: number) => decodeCompletion(phys.read(at, 32));
  return { phys, holes, routes, dev, events, log, record, tlb, groups, timers };
}

