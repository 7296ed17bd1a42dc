// The scalable-mode vIOMMU of one VM, modelled on QEMU hw/i386/intel_iommu.c: the guest owns PASID
// directories/tables in its memory; a PASID-cache invalidation makes the VMM re-read an entry, validate
// it (never trusting the guest) and mirror it on the host (pasid-cache.ts, pasid-binding.ts). The guest
// only ever sees vrids and vPASIDs; host ioasids (pPASIDs) stay in the shadow table (shadow-table.ts).
import type { FaultRecord } from '@app/shared/contract/host-kernel';
import { KernelError } from '@app/shared/errno';
import { isVtdFaultReason, VTD_FAULT_REASONS } from '@app/shared/vtd/vtd.constants';
import type { HostKernelPort } from '../host-kernel.port';
import { FaultLog } from './fault-log';
import { PageRequestRelay, type PulledGroup } from './page-requests';
import { parseInvalidationBatch, piotlbRange } from './invalidation';
import type { BindingContext } from './pasid-binding';
import { PasidCacheHandler } from './pasid-cache';
import { ShadowTable } from './shadow-table';
import { PAGE_SIZE } from '@app/shared/x86/x86.constants';
import { DEFAULT_PASID_QUOTA, GUEST_PRQ_DEPTH, PASID_DIR_BYTES } from './viommu.constants';
import type { GuestPageResponse, InvalidationDescriptor, InvalidationResult, ShadowBinding, VirtualFault, VirtualPageRequest } from './viommu.types';

export type ViommuPort = Pick<HostKernelPort, 'readGuestMemory'> & BindingContext['port'];

export interface ViommuDevice {
  vrid: number;
  bdf: string;
  deviceFd: number;
  /** PASID width of the physical device (its PASID capability). */
  pasidWidth: number;
}

export interface ViommuConfig {
  vmFd: number;
  ioasidFd: number;
  gpaIoasid: number;
  /** The VM's host fault queue, on `ioasidFd` (DESIGN §10: one per VM, bound with every nested table). */
  faultQueue: number;
  ramBytes: number;
  devices: ViommuDevice[];
  /** Bound vPASIDs allowed at once for this VM. */
  pasidQuota?: number;
  /** Requests the guest page request queue holds at once. */
  prqDepth?: number;
}


export class Viommu {
  private readonly contexts = new Map<number, number>();
  private readonly shadow: ShadowTable;
  private readonly pasidCache: PasidCacheHandler;
  private readonly log = new FaultLog();
  private readonly pageRequestRelay: PageRequestRelay;
  private readonly binding: BindingContext;
  private readonly quota: number;
  /**
   * The invalidation queue is one queue: batches run one after another, descriptors in order. Context
   * registration, reset and close go through it too, so none of them moves state under a running batch.
   */
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly port: ViommuPort,
    private readonly config: ViommuConfig,
  ) {
    this.quota = config.pasidQuota ?? DEFAULT_PASID_QUOTA;
    if (!Number.isInteger(this.quota) || this.quota < 0) throw new KernelError('EINVAL', `PASID quota ${this.quota} is not a count`);
    this.binding = {
      port,
      vmFd: config.vmFd,
      ioasidFd: config.ioasidFd,
      gpaIoasid: config.gpaIoasid,
      faultQueue: config.faultQueue,
      deviceFd: (vrid) => this.device(vrid).deviceFd,
    };
    this.pageRequestRelay = new PageRequestRelay(
      { read: () => port.readFaultGroups(config.ioasidFd, config.faultQueue), respond: (cookie, code) => port.respondFault(config.ioasidFd, config.faultQueue, cookie, code) },
      { vrid: (bdf) => config.devices.find((d) => d.bdf === bdf)?.vrid ?? null, vpasid: (ppasid) => this.shadow.byIoasid(ppasid)?.vpasid ?? null },
      config.prqDepth ?? GUEST_PRQ_DEPTH,
    );
    const hostRefused = (vrid: number | null, vpasid: number, err: KernelError): void => this.hostRefused(vrid, vpasid, err);
    // Unbind of a vPASID (or a device leaving it) answers its waiting page requests invalid before the host teardown.
    this.shadow = new ShadowTable(this.binding, hostRefused, (vpasid) => this.pageRequestRelay.drop((r) => r.vpasid === vpasid));
    this.pasidCache = new PasidCacheHandler({
      readGuest: (gpa, len) => port.readGuestMemory(config.vmFd, gpa, len),
      ramBytes: config.ramBytes,
      contexts: this.contexts,
      pasidWidth: (vrid) => this.device(vrid).pasidWidth,
      binding: this.binding,
      shadow: this.shadow,
      log: this.log,
      quota: this.quota,
      hostRefused,
      beforeDisallow: (vpasid, vrid) => this.pageRequestRelay.drop((r) => r.vpasid === vpasid && r.vrid === vrid),
    });
  }

  /**
   * Registers the PASID directory of a virtual RID (the scalable-mode context entry's PASIDDIRPTR). Queued
   * behind earlier invalidation batches, so a directory never moves under a binding being set up.
   */
  setContext(vrid: number, pasidDirGpa: number): Promise<void> {
    if (this.closed) return Promise.reject(new KernelError('ENODEV', 'the vIOMMU of this VM is being torn down'));
    return this.enqueue(async () => {
      this.device(vrid);
      if (!Number.isSafeInteger(pasidDirGpa) || pasidDirGpa < 0 || pasidDirGpa % PAGE_SIZE !== 0) {
        throw new KernelError('EINVAL', `PASID directory gpa ${pasidDirGpa} of vrid 0x${vrid.toString(16)} is not 4 KiB aligned`);
      }
      if (pasidDirGpa + PASID_DIR_BYTES > this.config.ramBytes) {
        throw new KernelError('EINVAL', `PASID directory gpa 0x${pasidDirGpa.toString(16)} is outside guest RAM`);
      }
      const current = this.contexts.get(vrid);
      if (current !== undefined && current !== pasidDirGpa) {
        // A stale binding mirrors no directory entry any more (it is retried by vPASID): it does not pin one.
        const bound = this.shadow.boundOn(vrid);
        if (bound > 0) throw new KernelError('EBUSY', `vrid 0x${vrid.toString(16)} still has ${bound} bound vPASIDs under its current directory`);
      }
      this.contexts.set(vrid, pasidDirGpa);
    });
  }

  contextOf(vrid: number): number | null {
    return this.contexts.get(vrid) ?? null;
  }

  /** Processes a batch of invalidation descriptors in order; a malformed batch fails whole with EINVAL. */
  invalidate(descriptors: unknown): Promise<InvalidationResult> {
    let batch: InvalidationDescriptor[];
    try {
      batch = parseInvalidationBatch(descriptors);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.closed) return Promise.reject(new KernelError('ENODEV', 'the vIOMMU of this VM is being torn down'));
    return this.enqueue(async () => {
      try {
        return await this.runBatch(batch);
      } catch (err) {
        // Whatever escaped is a host-side failure: only the errno reaches the guest, never host prose.
        throw new KernelError(err instanceof KernelError ? err.errno : 'EIO', 'the vIOMMU could not complete the invalidation batch');
      }
    });
  }

  faults(): VirtualFault[] {
    return this.log.list();
  }

  pageRequests(): VirtualPageRequest[] {
    return this.pageRequestRelay.list();
  }

  /** Groups the guest page request queue could not take since this vIOMMU was built (answered success). */
  get pageRequestOverflows(): number {
    return this.pageRequestRelay.overflows;
  }

  /**
   * The host said the VM's fault queue has groups: read them, forward each in guest terms. A group the guest queue
   * cannot take is answered success and reported as a vmm-prq-overflow fault (returned for the guest's lifeline).
   */
  async pullPageRequests(): Promise<{ groups: PulledGroup[]; forwarded: VirtualPageRequest[]; faults: VirtualFault[] }> {
    const pulled = await this.pageRequestRelay.pull();
    const faults = pulled.groups
      .filter((g) => g.outcome === 'overflow')
      .map((g) => this.log.record({ vrid: g.vrid, vpasid: g.vpasid ?? 0, reason: 'vmm-prq-overflow', errno: 'EAGAIN', detail: `page request group ${g.grpid} answered success: the queue is full` }));
    return { ...pulled, faults };
  }

  /** The guest's page group response (VT-d page group response descriptor): exactly one waiting group, or ENOENT. */
  pageResponse(r: GuestPageResponse): Promise<{ generation: number; host: string }> {
    return this.pageRequestRelay.respond(r);
  }

  /** VMM-internal view of the shadow table (contains pPASIDs: never hand it to the guest). */
  bindings(): ShadowBinding[] {
    return this.shadow.list();
  }

  /**
   * Guest reset (the guest died or rebooted; the VM keeps running and a new guest may boot): tears every
   * binding down (newest first: UNMAP_PASID, DISALLOW, DESTROY each), forgets the contexts, the fault log
   * and the page requests, and stays open. A binding whose teardown fails stays stale (see ShadowBinding).
   * Returns the host errors met on the way.
   */
  reset(): Promise<KernelError[]> {
    if (this.closed) return Promise.reject(new KernelError('ENODEV', 'the vIOMMU of this VM is being torn down'));
    return this.enqueue(async () => {
      // Nobody is left to answer the old guest's page requests: answered invalid, before the bindings go.
      await this.pageRequestRelay.drop(() => true);
      this.contexts.clear();
      this.log.clear();
      // After the clear, so the new guest sees which vPASIDs are still held by a stale binding.
      return this.shadow.releaseAll();
    });
  }

  /** VM teardown: tears every binding down like reset(), and refuses every later call with ENODEV. */
  close(): Promise<KernelError[]> {
    this.closed = true;
    return this.enqueue(async () => {
      await this.pageRequestRelay.drop(() => true);
      return this.shadow.releaseAll();
    });
  }

  /** The VM-teardown name used by the VM builder: same as close(). A guest reset must call reset() instead. */
  releaseAll(): Promise<KernelError[]> {
    return this.close();
  }

  /** A host IOMMU fault record in guest terms, logged; null when it is not this VM's (unknown BDF or pPASID). */
  translateHostFault(f: FaultRecord): VirtualFault | null {
    const dev = this.config.devices.find((d) => d.bdf === f.bdf);
    if (!dev) return null;
    let vpasid = 0;
    if (f.pasid !== null && f.pasid !== 0) {
      const b = this.shadow.byIoasid(f.pasid);
      if (!b) return null;
      vpasid = b.vpasid;
    }
    // A known VT-d reason is a fixed text: pass it on. Anything else is host prose (it may name the pPASID,
    // host fds or pids): the guest gets a fixed text instead.
    const known = isVtdFaultReason(f.reason) ? VTD_FAULT_REASONS[f.reason] : null;
    return this.log.record({
      vrid: dev.vrid,
      vpasid,
      reason: 'vmm-host-fault',
      errno: 'EFAULT',
      address: f.address,
      access: f.access,
      ...(known ? { code: known.code, reasonText: known.text } : { detail: 'DMA fault with a reason the vIOMMU does not model' }),
    });
  }

  private device(vrid: number): ViommuDevice {
    const dev = this.config.devices.find((d) => d.vrid === vrid);
    if (!dev) throw new KernelError('ENODEV', `no device with virtual RID 0x${Number(vrid).toString(16)} in this VM`);
    return dev;
  }

  private async runBatch(batch: InvalidationDescriptor[]): Promise<InvalidationResult> {
    const firstSeq = this.log.list().at(-1)?.seq ?? 0;
    let completed = 0;
    for (const d of batch) {
      if (d.type === 'pasid-cache') {
        if (d.vpasid === undefined) await this.pasidCache.global();
        else await this.pasidCache.one(d.vpasid);
      } else if (d.type === 'piotlb') {
        await this.piotlb(d);
      }
      // 'wait': every earlier descriptor has been awaited to the end, so it completes here.
      completed++;
    }
    return { completed, faults: this.log.list().filter((f) => f.seq > firstSeq) };
  }

  private enqueue<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn);
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async piotlb(d: Extract<InvalidationDescriptor, { type: 'piotlb' }>): Promise<void> {
    const b = this.shadow.get(d.vpasid);
    // Nothing cached for an unbound vPASID: completes as a no-op, as on hardware. A stale binding whose
    // ioasid is not destroyed yet may still be walked by a device: it is invalidated too.
    if (!b || (b.teardown && !b.teardown.live)) return;
    const range = piotlbRange(d);
    try {
      await this.port.invalidate(this.config.ioasidFd, b.ioasid, range ?? undefined);
    } catch (err) {
      this.hostRefused(null, d.vpasid, err instanceof KernelError ? err : new KernelError('EIO', String(err)));
    }
  }

  /** Host errors become guest faults; the host's message may name the pPASID, so only the errno crosses. */
  private hostRefused(vrid: number | null, vpasid: number, err: KernelError): void {
    this.log.record({ vrid, vpasid, reason: 'vmm-host-refused', errno: err.errno, detail: `host returned ${err.errno}` });
  }
}
