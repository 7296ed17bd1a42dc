// PASID-cache invalidation (VT-d §6.5.2.4), as QEMU's vtd_pasid_cache_sync(): re-read the guest's PASID
// entry of a vPASID under every registered directory, validate it (pasid-entry-reader.ts) and reconcile
// the shadow table: a new entry is set up on the host, a cleared or changed one torn down, devices added
// or removed. A stale binding of the vPASID is finished first, so UNMAP_PASID(V) precedes a new MAP_PASID(V).
import { KernelError } from '@app/shared/errno';
import type { FaultLog } from './fault-log';
import { allowOne, BindingContext, disallowOne, setupBinding } from './pasid-binding';
import { EntryReaderContext, readPasidEntry, sameEntry } from './pasid-entry-reader';
import { scanPresentVpasids } from './pasid-scan';
import type { HostErrorSink, ShadowTable } from './shadow-table';
import { VIOMMU_VPASID_BITS, VPASID_MIN } from './viommu.constants';
import type { MirroredEntry, ShadowBinding } from './viommu.types';

export interface PasidCacheDeps extends EntryReaderContext {
  /** vrid → PASID directory GPA (the vIOMMU's live map). */
  contexts: ReadonlyMap<number, number>;
  pasidWidth(vrid: number): number;
  binding: BindingContext;
  shadow: ShadowTable;
  log: FaultLog;
  quota: number;
  hostRefused: HostErrorSink;
  /** Runs before a device leaves a vPASID: its waiting page requests from that device are answered first. */
  beforeDisallow(vpasid: number, vrid: number): Promise<unknown>;
}

interface Present {
  vrid: number;
  entry: MirroredEntry;
  raw: Buffer;
}

export class PasidCacheHandler {
  /** Setups under way (batches of different vPASIDs run concurrently): each holds a place in the quota. */
  private settingUp = 0;

  constructor(private readonly d: PasidCacheDeps) {}

  /** Global PASID-cache invalidation: every vPASID present under a registered directory, and every binding. */
  async global(): Promise<void> {
    const vpasids = new Set<number>(this.d.shadow.vpasids());
    for (const [vrid, dirGpa] of this.d.contexts) {
      let found: number[];
      try {
        found = await scanPresentVpasids(this.d.readGuest, dirGpa, this.d.ramBytes);
      } catch (err) {
        const errno = err instanceof KernelError ? err.errno : 'EIO';
        this.d.log.record({ vrid, vpasid: 0, reason: 'pasid-dir-access-error', errno: 'EFAULT', detail: `reading the PASID directory failed (${errno})` });
        continue;
      }
      for (const v of found) vpasids.add(v);
    }
    for (const v of [...vpasids].sort((a, b) => a - b)) await this.one(v);
  }

  /** PASID-selective PASID-cache invalidation: re-read V under every registered directory and reconcile. */
  async one(vpasid: number): Promise<void> {
    if (vpasid < VPASID_MIN) {
      this.d.log.record({ vrid: null, vpasid, reason: 'rid-pasid-error', errno: 'EINVAL', detail: 'vPASID 0 is RID_PASID, owned by the VMM' });
      return;
    }
    if (vpasid >= 2 ** VIOMMU_VPASID_BITS) {
      this.d.log.record({ vrid: null, vpasid, reason: 'pasid-too-large', errno: 'EINVAL', detail: `vPASID ${vpasid} ≥ 2^${VIOMMU_VPASID_BITS}` });
      return;
    }
    // 1. read and validate every device's entry (guest-memory reads only: no host state changes yet)
    const present: Present[] = [];
    for (const [vrid, dirGpa] of [...this.d.contexts.entries()].sort((a, b) => a[0] - b[0])) {
      const r = await readPasidEntry(this.d, dirGpa, vpasid, this.d.pasidWidth(vrid));
      if (r.kind === 'refused') this.d.log.record({ vrid, vpasid, reason: r.reason, errno: r.errno, detail: r.detail });
      else if (r.kind === 'present') present.push({ vrid, entry: r.entry, raw: r.raw });
    }
    // 2. a stale binding of V (an earlier teardown failed part way): finish it before V is set up again,
    //    so UNMAP_PASID(V) always comes before a new MAP_PASID(V)
    let current = this.d.shadow.get(vpasid);
    let stale = false;
    if (current?.teardown) {
      stale = !(await this.d.shadow.retire(current)).done;
      current = undefined;
    }
    // 3. one entry per vPASID (one host ioasid, one KVM mapping): keep the mirrored one, else the lowest vrid's
    const target = present.find((p) => current && sameEntry(p.entry, current.entry))?.entry ?? present[0]?.entry;
    const wanted = present.filter((p) => target && sameEntry(p.entry, target));
    for (const p of present.filter((x) => !wanted.includes(x))) {
      this.d.log.record({ vrid: p.vrid, vpasid, reason: 'vmm-entry-conflict', errno: 'EBUSY', detail: 'one vPASID maps to one address space per VM' });
    }
    // 4. mirror: changed or cleared → tear down; same → add/remove devices; new → set up
    if (current && (wanted.length === 0 || !sameEntry(current.entry, target as MirroredEntry))) {
      stale = !(await this.d.shadow.retire(current)).done;
      current = undefined;
    }
    if (stale) {
      for (const p of wanted) {
        this.d.log.record({ vrid: p.vrid, vpasid, reason: 'vmm-host-refused', errno: 'EBUSY', detail: `the previous mirror of vPASID ${vpasid} is not torn down yet` });
      }
      return;
    }
    if (current) await this.updateDevices(current, wanted);
    else if (target && wanted.length > 0) await this.setup(vpasid, target, wanted);
  }

  private async updateDevices(binding: ShadowBinding, wanted: Present[]): Promise<void> {
    // Add first so the ioasid never drops to zero devices while KVM maps it.
    for (const p of wanted.filter((w) => !binding.vrids.includes(w.vrid))) {
      const err = await allowOne(this.d.binding, binding.ioasid, p.vrid);
      if (err) this.d.hostRefused(p.vrid, binding.vpasid, err);
      else binding.vrids.push(p.vrid);
    }
    if (!wanted.some((w) => binding.vrids.includes(w.vrid))) {
      // No device the guest wants holds the ioasid: never leave KVM mapping V to an ioasid that would be
      // allowed on no device. Full teardown, in order (UNMAP_PASID, DISALLOW, DESTROY).
      await this.d.shadow.retire(binding);
      return;
    }
    for (const p of wanted.filter((w) => binding.vrids.includes(w.vrid))) binding.snapshots[p.vrid] = p.raw.toString('hex');
    for (const vrid of [...binding.vrids].reverse().filter((v) => !wanted.some((w) => w.vrid === v))) {
      delete binding.snapshots[vrid];
      await this.d.beforeDisallow(binding.vpasid, vrid);
      const err = await disallowOne(this.d.binding, binding.ioasid, vrid);
      // Still routed on the host: keep the vrid, so the next pasid-cache of this vPASID retries the DISALLOW.
      if (err) this.d.hostRefused(vrid, binding.vpasid, err);
      else binding.vrids = binding.vrids.filter((v) => v !== vrid);
    }
  }

  private async setup(vpasid: number, entry: MirroredEntry, wanted: Present[]): Promise<void> {
    const held = this.d.shadow.size + this.settingUp;
    if (held >= this.d.quota) {
      for (const p of wanted) {
        this.d.log.record({ vrid: p.vrid, vpasid, reason: 'vmm-pasid-quota', errno: 'ENOSPC', detail: `${held} of ${this.d.quota} vPASIDs bound` });
      }
      return;
    }
    this.settingUp++;
    let outcome: Awaited<ReturnType<typeof setupBinding>>;
    try {
      outcome = await setupBinding(this.d.binding, vpasid, entry, wanted.map((p) => p.vrid));
    } finally {
      this.settingUp--;
    }
    for (const r of outcome.refused) this.d.hostRefused(r.vrid, vpasid, r.error);
    const ioasid = outcome.ioasid ?? outcome.stale?.ioasid;
    if (ioasid !== undefined) this.d.shadow.reapReused(ioasid);
    if (outcome.stale) this.d.shadow.keepStale({ vpasid, ioasid: outcome.stale.ioasid, entry }, outcome.stale.left, outcome.stale.errors);
    if (outcome.ioasid === null) return;
    const snapshots: Record<number, string> = {};
    for (const p of wanted.filter((w) => outcome.allowed.includes(w.vrid))) snapshots[p.vrid] = p.raw.toString('hex');
    this.d.shadow.set({ vpasid, ioasid: outcome.ioasid, entry, vrids: outcome.allowed, snapshots });
  }
}
