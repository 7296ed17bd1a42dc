// Test support for the accelerator specs (not used by production code): a device on a DMA port of identity-mapped
// iova spaces, its page request groups kept for the test to answer, and timers the test fires by hand.
import { decodeCompletion } from '@app/shared/dsa/descriptor';
import { HandTimers } from '@app/shared/hand-timers.testing';
import { Iotlb } from '../iommu/iotlb';
import { faultReasonOf, type PageTableView, type PhysicalMemoryPort, translate, translateHpa } from '../iommu/translate';
import { firstDifference } from '../memory/physical-memory';
import type { PageRequest, PageResponseCode } from '../ioasid/pgtbl';
import { Accelerator, type AcceleratorEvent, type DmaPort } from './accelerator';
import type { FrameMemory } from './dsa-ops';

/** Flat physical memory of 0x40000 bytes, as the IOMMU walk and the engine see it. */
export class FakePhys implements PhysicalMemoryPort, FrameMemory {
  readonly mem = Buffer.alloc(0x40000);
  read(hpa: number, length: number): Buffer {
    return Buffer.from(this.mem.subarray(hpa, hpa + length));
  }
  write(hpa: number, data: Buffer): void {
    data.copy(this.mem, hpa);
  }
  readU32(hpa: number): number {
    return this.mem.readUInt32LE(hpa);
  }
  writeU32(hpa: number, value: number): void {
    this.mem.writeUInt32LE(value >>> 0, hpa);
  }
  readPte(hpa: number, out: Uint32Array): void {
    out[0] = this.readU32(hpa);
    out[1] = this.readU32(hpa + 4);
  }
  copy(srcHpa: number, dstHpa: number, n: number): void {
    this.mem.copy(this.mem, dstHpa, srcHpa, srcHpa + n);
  }
  fill(dstHpa: number, n: number, pattern: Buffer): void {
    this.mem.fill(pattern, dstHpa, dstHpa + n);
  }
  compare(aHpa: number, bHpa: number, n: number): number {
    return firstDifference(this.mem, aHpa, this.mem, bHpa, n);
  }
  writeFrom(hpa: number, src: Buffer, offset: number, n: number): void {
    src.copy(this.mem, hpa, offset, offset + n);
  }
}

/** A DmaPort over identity-mapped `view`s (by PASID) of `phys`, every access in `log` when given. */
export function fakeDma(phys: FakePhys, tlb: Iotlb, view: (ppasid: number | null) => PageTableView | null, log?: Array<{ ppasid: number | null; address: number; length: number; write: boolean; privileged?: boolean }>): Pick<DmaPort, 'translate' | 'faultReason' | 'memory'> {
  return {
    translate(ppasid, address, length, write, privileged) {
      log?.push({ ppasid, address, length, write, ...(privileged ? { privileged } : {}) });
      return translateHpa(view(ppasid), address, write, privileged, phys, tlb);
    },
    faultReason: faultReasonOf,
    memory: phys,
  };
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
    ...fakeDma(phys, tlb, (ppasid) => routes.get(ppasid) ?? null, log),
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

