import { KernelError } from '@app/shared/errno';
import { Tx } from '../fault-injection';
import { AttachTable } from '../iommu/attach-table';
import type { IoasidRef } from '../ioasid/fdget';
import { KernelFile } from '../process/fd-table';
import { VfioDevice } from './vfio-device';

export type AllowMode = 'rid' | 'pasid';

/** Called before a route is removed: finish or abort in-flight DMA and page requests on it. */
export type DrainHook = (bdf: string, ppasid: number | null) => void;

/**
 * Function-level reset of the device (VFIO: pci_try_reset_function on open and on release, an FLR): its queued
 * work is discarded whatever PASID it carries, without completion records. Undone if the transaction fails.
 */
export type ResetHook = (tx: Tx, bdf: string) => void;

interface Attachment {
  mode: AllowMode;
  /** null for the RID route */
  routePasid: number | null;
  ref: IoasidRef;
  holderKey: string;
}

/**
 * An open VFIO device fd. DEVICE_ALLOW_IOASID / DISALLOW: the device's routes (RID, RID+PASID) to
 * ioasid page tables, each holding a reference on its ioasid. Only this layer knows the PCI device.
 */
export class VfioDeviceFile implements KernelFile {
  readonly kind = 'device';
  private readonly attachments = new Map<string, Attachment>();

  constructor(
    readonly device: VfioDevice,
    readonly fd: number,
    private readonly iommu: AttachTable,
    private readonly drain: DrainHook,
    private readonly resetHook: ResetHook,
  ) {}

  /** Reset the device for its new opener (VFIO resets on open): nothing a previous user queued survives. */
  open(tx: Tx): void {
    this.resetHook(tx, this.bdf);
  }

  get bdf(): string {
    return this.device.bdf;
  }

  allow(tx: Tx, ref: IoasidRef, mode: AllowMode): void {
    if (mode !== 'rid' && mode !== 'pasid') throw new KernelError('EINVAL', `allow mode must be "rid" or "pasid"`);
    if (ref.state !== 'bound' || !ref.pgtbl) throw new KernelError('EINVAL', `ioasid ${ref.ppasid} is ${ref.state}: BIND_PGTBL before allowing a device`);
    const routePasid = mode === 'rid' ? null : ref.ppasid;
    if (mode === 'pasid' && !this.device.canUsePasid(ref.ppasid)) {
      const width = this.device.config.pasidWidth;
      throw new KernelError('EINVAL', width === 0 ? `device ${this.bdf} has no PASID capability` : `pPASID ${ref.ppasid} exceeds device ${this.bdf}'s ${width}-bit PASID width`);
    }
    const key = routeKey(routePasid);
    const existing = this.attachments.get(key);
    if (existing) throw new KernelError('EBUSY', `device ${this.bdf} ${mode === 'rid' ? 'RID' : `PASID ${routePasid}`} is already routed to ioasid ${existing.ref.ppasid}`);
    const holderKey = `dev:${this.bdf}/${mode}`;
    this.iommu.attach(tx, this.bdf, routePasid, ref.pgtbl);
    ref.hold(tx, { kind: 'device', key: holderKey, bdf: this.bdf, mode, revoke: (t) => this.quiesce(t, routePasid), detach: (t) => this.detachRoute(t, routePasid) });
    const attachment: Attachment = { mode, routePasid, ref, holderKey };
    tx.do('vfio.attach', () => this.attachments.set(key, attachment), () => this.attachments.delete(key));
  }

  /**
   * DEVICE_DISALLOW_IOASID of the ioasid the caller names by (ioasid fd, id): `lookup` finds it, a destroyed
   * (parked) one of that fd included — its routes must still go, or the PASID could never be freed. An ioasid
   * that is not there, or has no route on this device, is a no-op (false).
   */
  disallowNamed(tx: Tx, lookup: (opts: { parked: true }) => IoasidRef | null): boolean {
    const ref = lookup({ parked: true });
    return ref !== null && this.disallow(tx, ref);
  }

  /** Remove every route of this device to the ioasid; false if there was none (a no-op). */
  disallow(tx: Tx, ref: IoasidRef): boolean {
    const hits = [...this.attachments.values()].filter((a) => a.ref.ppasid === ref.ppasid);
    for (const a of hits.sort(byPasidFirst)) this.detach(tx, a);
    return hits.length > 0;
  }

  /**
   * Device fd close: disallow everything it allowed (PASID routes before the RID one), then reset the device.
   * The drains only cover PASIDs with a route; work tagged with any other PASID (ENQCMD posts whatever the
   * caller's IA32_PASID says) would otherwise run later under whatever route then exists — the next opener's.
   */
  release(tx: Tx): void {
    for (const a of [...this.attachments.values()].sort(byPasidFirst)) this.detach(tx, a);
    this.resetHook(tx, this.bdf);
    const opener = this.device.openedBy;
    tx.do('vfio.close', () => (this.device.openedBy = null), () => (this.device.openedBy = opener));
  }

  allowed(): { mode: AllowMode; ioasid: number }[] {
    return [...this.attachments.values()].sort(byPasidFirst).map((a) => ({ mode: a.mode, ioasid: a.ref.ppasid }));
  }

  /** The owning ioasid fd closed: let go of that route as DISALLOW would (the caller no longer can). */
  private detachRoute(tx: Tx, routePasid: number | null): void {
    const a = this.attachments.get(routeKey(routePasid));
    if (a) this.detach(tx, a);
  }

  /** block → drain → remove the route → drop the reference (VT-d: clear PASID entry, flush, drain PRQ). */
  private detach(tx: Tx, a: Attachment): void {
    this.quiesce(tx, a.routePasid);
    this.iommu.detach(tx, this.bdf, a.routePasid);
    const key = routeKey(a.routePasid);
    tx.do('vfio.detach', () => this.attachments.delete(key), () => this.attachments.set(key, a));
    a.ref.release(tx, a.holderKey);
  }

  /** Block the route so new requests fault, then drain what is in flight (also used by DESTROY). */
  private quiesce(tx: Tx, routePasid: number | null): void {
    this.iommu.block(tx, this.bdf, routePasid);
    tx.step('vfio.drain');
    this.drain(this.bdf, routePasid);
  }
}

const routeKey = (routePasid: number | null): string => (routePasid === null ? 'rid' : `pasid:${routePasid}`);
const byPasidFirst = (a: Attachment, b: Attachment): number => Number(a.routePasid === null) - Number(b.routePasid === null) || (a.routePasid ?? 0) - (b.routePasid ?? 0);
