// The scalable-mode vIOMMU of one VM, modelled on QEMU hw/i386/intel_iommu.c: the guest owns PASID
// directories/tables in its memory; a PASID-cache invalidation makes the VMM re-read an entry, validate
// it (never trusting the guest) and mirror it on the host (pasid-binding.ts). The guest only ever sees
// vrids and vPASIDs; host ioasids (pPASIDs) stay in the shadow table.
import type { FaultRecord } from '@app/shared/contract/host-kernel';
import { KernelError } from '@app/shared/errno';
import { isVtdFaultReason, VTD_FAULT_REASONS } from '@app/shared/vtd/vtd.constants';
import type { HostKernelPort } from '../host-kernel.port';
import { FaultLog, hidePasid } from './fault-log';
import { PageRequestQueue } from './page-requests';
import { parseInvalidationBatch, piotlbRange } from './invalidation';
import { allowOne, BindingContext, disallowOne, setupBinding, teardownBinding } from './pasid-binding';
import { EntryRead, readPasidEntry, sameEntry } from './pasid-entry-reader';
import { scanPresentVpasids } from './pasid-scan';
import {
  DEFAULT_PASID_QUOTA,
  PAGE_BYTES,
  PASID_DIR_BYTES,
  VIOMMU_VPASID_BITS,
  VPASID_MIN,
} from './viommu.constants';
import type {
  InvalidationDescriptor,
  InvalidationResult,
  MirroredEntry,
  ShadowBinding,
  VirtualFault,
  VirtualPageRequest,
} from './viommu.types';

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
  ramBytes: number;
  devices: ViommuDevice[];
  /** Bound vPASIDs allowed at once for this VM. */
  pasidQuota?: number;
}

interface Present {
  vrid: number;
  entry: MirroredEntry;
  raw: Buffer;
}

export class Viommu {
  private readonly contexts = new Map<number, number>();
  private readonly shadow = new Map<number, ShadowBinding>();
  private readonly log = new FaultLog();
  private readonly pageRequestQueue = new PageRequestQueue();
  private readonly binding: BindingContext;
  private readonly quota: number;
  /** The invalidation queue is one queue: batches run one after another, descriptors in order. */
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
      deviceFd: (vrid) => this.device(vrid).deviceFd,
    };
  }

  /** Registers the PASID directory of a virtual RID (the scalable-mode context entry's PASIDDIRPTR). */
  setContext(vrid: number, pasidDirGpa: number): void {
    this.device(vrid);
    if (!Number.isSafeInteger(pasidDirGpa) || pasidDirGpa < 0 || pasidDirGpa % PAGE_BYTES !== 0) {
      throw new KernelError('EINVAL', `PASID directory gpa ${pasidDirGpa} of vrid 0x${vrid.toString(16)} is not 4 KiB aligned`);
    }
    if (pasidDirGpa + PASID_DIR_BYTES > this.config.ramBytes) {
      throw new KernelError('EINVAL', `PASID directory gpa 0x${pasidDirGpa.toString(16)} is outside guest RAM`);
    }
    const current = this.contexts.get(vrid);
    if (current !== undefined && current !== pasidDirGpa) {
      const bound = [...this.shadow.values()].filter((b) => b.vrids.includes(vrid)).length;
      if (bound > 0) throw new KernelError('EBUSY', `vrid 0x${vrid.toString(16)} still has ${bound} bound vPASIDs under its current directory`);
    }
    this.contexts.set(vrid, pasidDirGpa);
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
    const run = this.tail.then(() => this.runBatch(batch));
    this.tail = run.catch(() => undefined);
    return run;
  }

  faults(): VirtualFault[] {
    return this.log.list();
  }

  pageRequests(): VirtualPageRequest[] {
    return this.pageRequestQueue.list();
  }

  /** A host page request in guest terms, queued for the guest; null when it is not this VM's. */
  translateHostPageRequest(r: { bdf: string; pasid: number; address: number; access: 'read' | 'write' }): VirtualPageRequest | null {
    const dev = this.config.devices.find((d) => d.bdf === r.bdf);
    const b = [...this.shadow.values()].find((s) => s.ioasid === r.pasid);
    if (!dev || !b) return null;
    return this.pageRequestQueue.push({ vrid: dev.vrid, vpasid: b.vpasid, address: r.address, access: r.access });
  }

  /**
   * The guest's page response (VT-d page group response): removes the request and returns what the VMM
   * forwards to the host (with the pPASID). ENOENT when no such request is pending.
   */
  pageResponse(seq: number, success: boolean): { bdf: string; ppasid: number; address: number; success: boolean } {
    const pr = this.pageRequestQueue.take(seq);
    const b = this.shadow.get(pr.vpasid);
    if (!b) throw new KernelError('ENOENT', `vPASID ${pr.vpasid} of page request ${seq} is no longer bound`);
    return { bdf: this.device(pr.vrid).bdf, ppasid: b.ioasid, address: pr.address, success };
  }

  /** VMM-internal view of the shadow table (contains pPASIDs: never hand it to the guest). */
  bindings(): ShadowBinding[] {
    return [...this.shadow.values()].map((b) => ({ ...b, entry: { ...b.entry }, vrids: [...b.vrids], snapshots: { ...b.snapshots } }));
  }

  /** Tears every binding down (newest first): UNMAP_PASID, DISALLOW, DESTROY each. Used by VM teardown. */
  releaseAll(): Promise<KernelError[]> {
    this.closed = true;
    const run = this.tail.then(async () => {
      const errors: KernelError[] = [];
      for (const b of [...this.shadow.values()].reverse()) {
        errors.push(...(await teardownBinding(this.binding, b.vpasid, b.ioasid, b.vrids)));
        this.shadow.delete(b.vpasid);
      }
      return errors;
    });
    this.tail = run.catch(() => undefined);
    return run;
  }

  /** A host IOMMU fault record in guest terms, logged; null when it is not this VM's (unknown BDF or pPASID). */
  translateHostFault(f: FaultRecord): VirtualFault | null {
    const dev = this.config.devices.find((d) => d.bdf === f.bdf);
    if (!dev) return null;
    let vpasid = 0;
    if (f.pasid !== null && f.pasid !== 0) {
      const b = [...this.shadow.values()].find((s) => s.ioasid === f.pasid);
      if (!b) return null;
      vpasid = b.vpasid;
    }
    // A known VT-d reason is a fixed text: pass it on. Anything else is host prose that may name the pPASID.
    const known = isVtdFaultReason(f.reason) ? VTD_FAULT_REASONS[f.reason] : null;
    return this.log.record({
      vrid: dev.vrid,
      vpasid,
      reason: 'VMM_HOST_FAULT',
      errno: 'EFAULT',
      address: f.address,
      access: f.access,
      ...(known ? { code: known.code, reasonText: known.text } : { detail: hidePasid(f.reason, f.pasid, vpasid) }),
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
        if (d.vpasid === undefined) await this.pasidCacheGlobal();
        else await this.pasidCache(d.vpasid);
      } else if (d.type === 'piotlb') {
        await this.piotlb(d);
      }
      // 'wait': every earlier descriptor has been awaited to the end, so it completes here.
      completed++;
    }
    return { completed, faults: this.log.list().filter((f) => f.seq > firstSeq) };
  }

  private async pasidCacheGlobal(): Promise<void> {
    const vpasids = new Set<number>(this.shadow.keys());
    for (const dirGpa of this.contexts.values()) {
      for (const v of await scanPresentVpasids((gpa, len) => this.port.readGuestMemory(this.config.vmFd, gpa, len), dirGpa, this.config.ramBytes)) vpasids.add(v);
    }
    for (const v of [...vpasids].sort((a, b) => a - b)) await this.pasidCache(v);
  }

  /** PASID-selective PASID-cache invalidation: re-read V under every registered directory and reconcile. */
  private async pasidCache(vpasid: number): Promise<void> {
    if (vpasid < VPASID_MIN) {
      this.log.record({ vrid: null, vpasid, reason: 'RID_PASID', errno: 'EINVAL', detail: 'vPASID 0 is RID_PASID, owned by the VMM' });
      return;
    }
    if (vpasid >= 2 ** VIOMMU_VPASID_BITS) {
      this.log.record({ vrid: null, vpasid, reason: 'PASID_TOO_LARGE', errno: 'EINVAL', detail: `vPASID ${vpasid} ≥ 2^${VIOMMU_VPASID_BITS}` });
      return;
    }
    // 1. read and validate every device's entry (guest-memory reads only: no host state changes yet)
    const present: Present[] = [];
    for (const [vrid, dirGpa] of [...this.contexts.entries()].sort((a, b) => a[0] - b[0])) {
      const r: EntryRead = await readPasidEntry(
        { readGuest: (gpa, len) => this.port.readGuestMemory(this.config.vmFd, gpa, len), ramBytes: this.config.ramBytes },
        dirGpa,
        vpasid,
        this.device(vrid).pasidWidth,
      );
      if (r.kind === 'refused') this.log.record({ vrid, vpasid, reason: r.reason, errno: r.errno, detail: r.detail });
      else if (r.kind === 'present') present.push({ vrid, entry: r.entry, raw: r.raw });
    }
    // 2. one entry per vPASID (one host ioasid, one KVM mapping): keep the mirrored one, else the lowest vrid's
    let current = this.shadow.get(vpasid);
    const target = present.find((p) => current && sameEntry(p.entry, current.entry))?.entry ?? present[0]?.entry;
    const wanted = present.filter((p) => target && sameEntry(p.entry, target));
    for (const p of present.filter((x) => !wanted.includes(x))) {
      this.log.record({ vrid: p.vrid, vpasid, reason: 'VMM_ENTRY_CONFLICT', errno: 'EBUSY', detail: 'one vPASID maps to one address space per VM' });
    }
    // 3. mirror: changed or cleared → tear down; same → add/remove devices; new → set up
    if (current && (wanted.length === 0 || !sameEntry(current.entry, target as MirroredEntry))) {
      await teardownBinding(this.binding, vpasid, current.ioasid, current.vrids);
      this.shadow.delete(vpasid);
      current = undefined;
    }
    if (current) await this.updateDevices(current, wanted);
    else if (target && wanted.length > 0) await this.setup(vpasid, target, wanted);
  }

  private async updateDevices(binding: ShadowBinding, wanted: Present[]): Promise<void> {
    // Add first so the ioasid never drops to zero devices while KVM maps it.
    for (const p of wanted.filter((w) => !binding.vrids.includes(w.vrid))) {
      const err = await allowOne(this.binding, binding.ioasid, p.vrid);
      if (err) this.hostRefused(p.vrid, binding.vpasid, err);
      else binding.vrids.push(p.vrid);
    }
    for (const p of wanted) binding.snapshots[p.vrid] = p.raw.toString('hex');
    for (const vrid of [...binding.vrids].reverse().filter((v) => !wanted.some((w) => w.vrid === v))) {
      await disallowOne(this.binding, binding.ioasid, vrid);
      binding.vrids = binding.vrids.filter((v) => v !== vrid);
      delete binding.snapshots[vrid];
    }
  }

  private async setup(vpasid: number, entry: MirroredEntry, wanted: Present[]): Promise<void> {
    if (this.shadow.size >= this.quota) {
      for (const p of wanted) {
        this.log.record({ vrid: p.vrid, vpasid, reason: 'VMM_PASID_QUOTA', errno: 'ENOSPC', detail: `${this.shadow.size} of ${this.quota} vPASIDs bound` });
      }
      return;
    }
    const outcome = await setupBinding(this.binding, vpasid, entry, wanted.map((p) => p.vrid));
    for (const r of outcome.refused) this.hostRefused(r.vrid, vpasid, r.error);
    if (outcome.ioasid === null) return;
    const snapshots: Record<number, string> = {};
    for (const p of wanted.filter((w) => outcome.allowed.includes(w.vrid))) snapshots[p.vrid] = p.raw.toString('hex');
    this.shadow.set(vpasid, { vpasid, ioasid: outcome.ioasid, entry, vrids: outcome.allowed, snapshots });
  }

  private async piotlb(d: Extract<InvalidationDescriptor, { type: 'piotlb' }>): Promise<void> {
    const b = this.shadow.get(d.vpasid);
    if (!b) return; // nothing cached for an unbound vPASID: completes as a no-op, as on hardware
    const range = piotlbRange(d);
    try {
      await this.port.invalidate(this.config.ioasidFd, b.ioasid, range ?? undefined);
    } catch (err) {
      this.hostRefused(null, d.vpasid, err instanceof KernelError ? err : new KernelError('EIO', String(err)));
    }
  }

  /** Host errors become guest faults; the host's message may name the pPASID, so only the errno crosses. */
  private hostRefused(vrid: number | null, vpasid: number, err: KernelError): void {
    this.log.record({ vrid, vpasid, reason: 'VMM_HOST_REFUSED', errno: err.errno, detail: `host returned ${err.errno}` });
  }
}
