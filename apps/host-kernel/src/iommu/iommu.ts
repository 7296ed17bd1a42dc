import type { FaultRecord } from '@app/shared/contract/host-kernel';
import { realTimers, type Timers } from '@app/shared/timers';
import { NO_PASID } from '../ioasid/ioasid.constants';
import type { InvalidateRequest } from '../ioasid/ioasid-layer';
import type { PageRequest, PageTableHandle } from '../ioasid/pgtbl';
import { AttachTable } from './attach-table';
import { FAULT_LOG_CAPACITY, FAULT_REASONS, IOTLB_DEFAULT_CAPACITY, PRQ_DEFAULT_DEPTH, PRQ_DEFAULT_TIMEOUT_MS, RECOVERABLE_FAULTS } from './iommu.constants';
import { Iotlb } from './iotlb';
import { type DeviceResponder, type PageEvent, PageRequestQueue } from './page-request-queue';
import { dmaAccess, faultReasonOf, type PageTableView, type PhysicalMemoryPort, translate, translateHpa } from './translate';

export type IommuAccessResult = { ok: true; data?: Buffer } | { ok: false; address: number; reason: string; fault: FaultRecord };

/** A translation request (ATS) of a device: translated, or why not and whether a page request could fix it. */
export type ProbeResult = { ok: true } | { ok: false; reason: string; recoverable: boolean };
const PROBE_OK: ProbeResult = { ok: true };

export interface IommuOptions {
  memory: PhysicalMemoryPort;
  /** Every fault, after it is logged; `route` is the table the request was routed to (null: no route). */
  onFault?: (fault: FaultRecord, route: PageTableHandle | null) => void;
  /** Every page request group and every answer to one; `route` as for faults. */
  onPageEvent?: (e: PageEvent, route: PageTableHandle | null) => void;
  faultLogCapacity?: number;
  iotlbCapacity?: number;
  /** Page request queue depth (requests) and the timeout after which the kernel answers a group invalid. */
  prqDepth?: number;
  prqTimeoutMs?: number;
  timers?: Timers;
}

/** A blocked route translates like a destroyed table: every request faults 'translation-blocked'. */
const BLOCKED: PageTableView = { kind: 'iova', id: 0, destroyed: true, lookup: () => null };

/**
 * The host IOMMU (VT-d scalable mode): the per-device attach table VFIO programs, one IOTLB shared by every
 * device, and the fault log. access() is the path of every device-initiated request (bdf, PASID or RID, address,
 * read/write): route lookup → page-table walk (iommu/translate.ts) → physical memory, or a fault record.
 */
export class Iommu {
  readonly table = new AttachTable();
  readonly iotlb: Iotlb;
  readonly prq: PageRequestQueue;
  private readonly log: FaultRecord[] = [];
  private readonly capacity: number;
  private head = 0;
  private lost = 0;
  /** Every fault since boot by VT-d reason, whether or not the log still holds it (metrics). */
  private readonly byReason = new Map<string, number>();
  /** The route whose drain is running: its own completion writes still pass the block (see drainWith). */
  private draining: { bdf: string; ppasid: number | null } | null = null;

  constructor(private readonly options: IommuOptions) {
    this.iotlb = new Iotlb(options.iotlbCapacity ?? IOTLB_DEFAULT_CAPACITY);
    this.capacity = options.faultLogCapacity ?? FAULT_LOG_CAPACITY;
    this.prq = new PageRequestQueue(
      this.table,
      { depth: options.prqDepth ?? PRQ_DEFAULT_DEPTH, timeoutMs: options.prqTimeoutMs ?? PRQ_DEFAULT_TIMEOUT_MS, timers: options.timers ?? realTimers },
      (e, route) => options.onPageEvent?.(e, route),
    );
  }

  addDevice(bdf: string): void {
    this.table.addDevice(bdf);
  }

  /**
   * One device request. Nothing moves unless every page translates (dmaAccess); a fault is logged and reported.
   * privileged: the request's PR bit (PCIe PASID prefix "Privileged Mode Requested"); default a user request.
   */
  access(bdf: string, ppasid: number | null, address: number, length: number, write: boolean, data?: Buffer, privileged = false): IommuAccessResult {
    const key = ppasid === NO_PASID ? null : ppasid;
    const route = this.table.find(bdf, key);
    const r = dmaAccess(this.viewFor(bdf, key), address, length, write, data, this.options.memory, this.iotlb, privileged);
    if (r.ok) return r;
    const fault: FaultRecord = { bdf, pasid: key, address: r.address, access: write ? 'write' : 'read', reason: r.reason, code: FAULT_REASONS[r.reason].code };
    this.record(fault);
    this.options.onFault?.({ ...fault }, route?.pgtbl ?? null);
    return { ok: false, address: r.address, reason: r.reason, fault };
  }

  /**
   * The device data plane's request: one access inside one page (a descriptor's accesses never cross one). Its hpa,
   * or a negative fault code (translate.ts faultReasonOf) once the fault is logged and reported exactly as access()
   * does. Nothing is allocated unless it faults.
   */
  translatePage(bdf: string, ppasid: number | null, address: number, write: boolean, privileged: boolean): number {
    const key = ppasid === NO_PASID ? null : ppasid;
    const route = this.table.route(bdf, key);
    const view = route === null ? null : route.blocked && !this.isDraining(bdf, key) ? BLOCKED : route.pgtbl;
    const hpa = translateHpa(view, address, write, privileged, this.options.memory, this.iotlb);
    // The fault is a call of its own, so the data plane's every access stays small enough to be inlined.
    return hpa >= 0 ? hpa : this.pageFault(hpa, bdf, key, address, write, route);
  }

  /** translatePage's fault: logged and reported as access() does; the negative code back to the device. */
  private pageFault(code: number, bdf: string, pasid: number | null, address: number, write: boolean, route: { readonly pgtbl: PageTableHandle } | null): number {
    const reason = faultReasonOf(code);
    const fault: FaultRecord = { bdf, pasid, address, access: write ? 'write' : 'read', reason, code: FAULT_REASONS[reason].code };
    this.record(fault);
    this.options.onFault?.({ ...fault }, route?.pgtbl ?? null);
    return code;
  }

  /**
   * A translation request of one page (PCIe ATS, as a PRI-capable device makes before it touches memory): no byte
   * moves and no fault is logged; a recoverable miss is what the device then asks for with a page request.
   */
  probe(bdf: string, ppasid: number | null, address: number, write: boolean, privileged = false): ProbeResult {
    const key = ppasid === NO_PASID ? null : ppasid;
    const view = this.viewFor(bdf, key);
    const t = translate(view, address, { write, privileged }, this.options.memory, this.iotlb);
    if (t.ok) return PROBE_OK;
    return { ok: false, reason: t.reason, recoverable: RECOVERABLE_FAULTS.has(t.reason) };
  }

  /** A page request group of device `bdf` (PCIe PRI), answered through `respond` (now or later). */
  pageRequest(bdf: string, ppasid: number | null, grpid: number, requests: PageRequest[], respond: DeviceResponder): void {
    this.prq.submit(bdf, ppasid === NO_PASID ? null : ppasid, grpid, requests, respond);
  }

  /**
   * Runs a device drain for (bdf, ppasid). VFIO blocks the route before draining; the requests the drain itself
   * issues (aborted descriptors' completion records) still complete, as a device finishes its in-flight work for
   * a PASID before the PASID entry is torn down (Linux: idxd drains the PASID before iommu_sva_unbind_device).
   * The route's cached translations are flushed afterwards, as intel_pasid_tear_down_entry does.
   */
  drainWith(bdf: string, ppasid: number | null, drain: () => void): void {
    const key = ppasid === NO_PASID ? null : ppasid;
    const outer = this.draining;
    this.draining = { bdf, ppasid: key };
    try {
      // VT-d: drain the page requests of the PASID before its entry goes (intel_drain_pasid_prq); iommufd
      // answers what its fault queue holds for the detached route invalid (iommufd_auto_response_faults).
      this.prq.answerRoute(bdf, key);
      drain();
    } finally {
      this.draining = outer;
    }
    const route = this.table.find(bdf, key);
    if (route) this.iotlb.invalidate(route.pgtbl.id);
  }

  /** The control plane's IOTLB flush (INVALIDATE, UNMAP, DESTROY); nested children arrive as their own requests. */
  invalidate(req: InvalidateRequest): number {
    return req.range ? this.iotlb.invalidate(req.pgtblId, req.range.iova, req.range.length) : this.iotlb.invalidate(req.pgtblId);
  }

  /** The fault log, oldest first. */
  faults(): FaultRecord[] {
    const ordered = this.log.length < this.capacity ? this.log : [...this.log.slice(this.head), ...this.log.slice(0, this.head)];
    return ordered.map((f) => ({ ...f }));
  }

  /** Faults overwritten because the log was full. */
  get overwritten(): number {
    return this.lost;
  }

  /** Faults since boot, by reason (the log keeps only the last FAULT_LOG_CAPACITY). */
  faultCounts(): ReadonlyMap<string, number> {
    return this.byReason;
  }

  private record(fault: FaultRecord): void {
    this.byReason.set(fault.reason, (this.byReason.get(fault.reason) ?? 0) + 1);
    if (this.log.length < this.capacity) {
      this.log.push(fault);
      return;
    }
    this.log[this.head] = fault;
    this.head = (this.head + 1) % this.capacity;
    this.lost++;
  }

  /** What a request on (bdf, ppasid) is translated with: its table, BLOCKED, or null (no route). */
  private viewFor(bdf: string, ppasid: number | null): PageTableView | null {
    const route = this.table.find(bdf, ppasid);
    if (!route) return null;
    return route.blocked && !this.isDraining(bdf, ppasid) ? BLOCKED : route.pgtbl;
  }

  private isDraining(bdf: string, ppasid: number | null): boolean {
    return this.draining !== null && this.draining.bdf === bdf && this.draining.ppasid === ppasid;
  }
}
