import { KernelError } from '@app/shared/errno';
import { Tx } from '../fault-injection';
import { PhysicalMemory } from '../memory/physical-memory';
import { IdAllocator } from '../lib/id-allocator';
import { IdTable } from '../lib/id-table';
import { childKey, Holder, Ioasid, IoasidHolders, IoasidOwner, IoasidState } from './ioasid';
import { PASID_LIMIT } from '@app/shared/vtd/vtd.constants';
import { NO_PASID } from './ioasid.constants';
import { PageTable } from './page-tables';

export interface InvalidateRequest {
  pgtblId: number;
  ppasid: number;
  kind: PageTable['kind'];
  /** null = the whole table */
  range: { iova: number; length: number } | null;
  reason: 'invalidate' | 'unmap' | 'destroy';
}

export interface IoasidHooks {
  /** IOTLB flush; the data plane fills it in. */
  onInvalidate(req: InvalidateRequest): void;
  /**
   * The pPASID is about to return to the pool: abort whatever work tagged with it is still queued on ANY device
   * (ENQCMD may post it to a device it was never allowed on, where no route drain reaches it). The data plane
   * fills it in; DESIGN §2: a PASID is freed only when no DMA with it is in flight.
   */
  drainPasid(ppasid: number): void;
}

export interface PasidInfo {
  pasid: number;
  state: 'free' | 'allocated' | 'parked';
  ioasidState?: IoasidState;
  owner?: { pid: number; fd: number };
  refs?: number;
  holders?: IoasidHolders;
}

/**
 * The global side of /dev/ioasid: the pPASID pool, every live or parked ioasid by id (an IdTable, as Linux keeps
 * them in an xarray), and the reference counting that parks and frees them. VFIO and KVM reach an ioasid only through fdget.ts.
 */
export class IoasidLayer {
  private readonly pool: IdAllocator;
  /** allocated, bound and parked ioasids by pPASID (the kernel's xarray); a freed id is absent. */
  private readonly ioasids: IdTable<Ioasid>;
  private nextPgtblId = 1;
  private nextCtxId = 1;
  private parkedCount = 0;
  /** PASIDs each process owns, allocated or parked (charged at ALLOC, given back when the PASID is freed). */
  private readonly owned = new Map<number, number>();

  /**
   * pasidLimit: 2^(IOMMU PASID width); VT-d reports it in ECAP.PSS, 20 bits on current parts. perProcess: how many
   * of them one process may own (limits/limits.ts PASID_LIMIT).
   */
  constructor(
    readonly memory: PhysicalMemory,
    readonly hooks: IoasidHooks,
    readonly pasidLimit = PASID_LIMIT,
    readonly perProcess = Number.MAX_SAFE_INTEGER,
  ) {
    if (!Number.isInteger(pasidLimit) || pasidLimit < 2 || pasidLimit > PASID_LIMIT) throw new KernelError('EINVAL', `PASID space ${pasidLimit} outside [2, 2^20]`);
    this.pool = new IdAllocator(pasidLimit);
    this.pool.reserve(NO_PASID);
    this.ioasids = new IdTable(pasidLimit);
  }

  /** A new context id for open("/dev/ioasid"). */
  newContextId(tx: Tx): number {
    return tx.do('ioasid.open', () => this.nextCtxId++, () => this.nextCtxId--);
  }

  /**
   * The lowest free pPASID, as a new ioasid owned by `owner`; ENOSPC when the space, or the owner's share, is
   * exhausted. Its fd makes it visible, in the id map and in the fd's own list, as the call's next step
   * (FdIoasids.insert).
   */
  allocPasid(tx: Tx, owner: IoasidOwner): Ioasid {
    const owns = this.ownedBy(owner.pid);
    if (owns >= this.perProcess) throw new KernelError('ENOSPC', `process ${owner.pid} owns ${owns} PASIDs (PASID_LIMIT ${this.perProcess})`);
    // Closure-free steps (Tx.doOn): ALLOC runs 2^20 times in a row when a process takes the whole space.
    tx.doOn('pasid.charge', this, owner.pid, IoasidLayer.chargeOne, IoasidLayer.unchargeOne);
    const id = tx.doOn('pasid.alloc', this, null, IoasidLayer.takeLowest, IoasidLayer.release);
    return new Ioasid(id, owner);
  }

  newPgtblId(tx: Tx): number {
    return tx.do('pgtbl.alloc', () => this.nextPgtblId++, () => this.nextPgtblId--);
  }

  hold(tx: Tx, ioasid: Ioasid, holder: Holder): void {
    if (ioasid.holder(holder.key)) throw new KernelError('EBUSY', `ioasid ${ioasid.id} is already held by ${holder.key}`);
    tx.do('ioasid.get', () => ioasid.addHolder(holder), () => ioasid.removeHolder(holder.key));
  }

  put(tx: Tx, ioasid: Ioasid, holderKey: string): void {
    const holder = ioasid.holder(holderKey);
    if (!holder) throw new Error(`ioasid ${ioasid.id} has no holder ${holderKey}`);
    tx.do('ioasid.put', () => ioasid.removeHolder(holderKey), () => ioasid.addHolder(holder));
    this.freeIfUnused(tx, ioasid);
  }

  /** A destroyed ioasid whose last holder let go: the pPASID returns to the pool, the parent is unpinned. */
  freeIfUnused(tx: Tx, ioasid: Ioasid): void {
    if (ioasid.state !== 'destroyed' || ioasid.holderCount > 0) return;
    tx.doOn('pasid.free', this, ioasid, IoasidLayer.free, IoasidLayer.unfree);
    tx.emit({ kind: 'ioasid-freed', pid: ioasid.owner.pid, ppasid: ioasid.id });
    // Deferred to commit, before anything else can run: a failed call frees nothing and drains nothing, and no
    // call can allocate the id (or submit work with it) between the commit and this drain.
    tx.defer(() => this.hooks.drainPasid(ioasid.id));
    if (ioasid.parent) this.put(tx, ioasid.parent, childKey(ioasid.id));
  }

  /** IOTLB flush of one table; an iova parent's nested children cache translations through it too. */
  flush(ioasid: Ioasid, range: InvalidateRequest['range'], reason: InvalidateRequest['reason']): void {
    const pgtbl = ioasid.pgtbl;
    if (!pgtbl) return;
    this.hooks.onInvalidate({ pgtblId: pgtbl.id, ppasid: ioasid.id, kind: pgtbl.kind, range, reason });
    // The nested children from the holders themselves, in id order: no described copy (strings, sorts) per INVALIDATE.
    if (ioasid.holderCount === 0) return;
    let children: number[] | null = null;
    for (const h of ioasid.holders()) if (h.kind === 'child') (children ??= []).push(h.ioasid);
    if (children === null) return;
    if (children.length > 1) children.sort((a, b) => a - b);
    for (const child of children) {
      const nested = this.ioasids.get(child)?.pgtbl;
      if (nested) this.hooks.onInvalidate({ pgtblId: nested.id, ppasid: child, kind: nested.kind, range: null, reason });
    }
  }

  /** DESTROY marks the ioasid parked: its fd no longer sees it (FdIoasids), the pool does not get it back yet. */
  park(tx: Tx, ioasid: Ioasid): void {
    tx.doOn('ioasid.park', this, ioasid, IoasidLayer.parkOne, IoasidLayer.unparkOne);
  }

  /** PASIDs process `pid` owns, allocated or parked. */
  ownedBy(pid: number): number {
    return this.owned.get(pid) ?? 0;
  }

  // The ALLOC steps, as functions of (layer, argument) so that a step allocates no closure.
  private static chargeOne(layer: IoasidLayer, pid: number): void {
    layer.charge(pid, 1);
  }
  private static unchargeOne(layer: IoasidLayer, pid: number): void {
    layer.charge(pid, -1);
  }
  private static takeLowest(layer: IoasidLayer): number {
    const id = layer.pool.alloc();
    if (id === null) throw new KernelError('ENOSPC', `all ${layer.pasidLimit - 1} PASIDs are allocated or parked`);
    return id;
  }
  private static release(layer: IoasidLayer, _arg: null, id: number): void {
    layer.pool.release(id);
  }
  // The park and free steps, closure-free too: an fd close runs them once per ioasid (up to 2^20 in one call).
  private static parkOne(layer: IoasidLayer, ioasid: Ioasid): IoasidState {
    const previous = ioasid.state;
    ioasid.state = 'destroyed';
    layer.parkedCount++;
    return previous;
  }
  private static unparkOne(layer: IoasidLayer, ioasid: Ioasid, previous: IoasidState): void {
    ioasid.state = previous;
    layer.parkedCount--;
  }
  private static free(layer: IoasidLayer, ioasid: Ioasid): void {
    layer.ioasids.delete(ioasid.id);
    layer.pool.release(ioasid.id);
    layer.parkedCount--;
    layer.charge(ioasid.owner.pid, -1);
  }
  private static unfree(layer: IoasidLayer, ioasid: Ioasid): void {
    layer.pool.reserve(ioasid.id);
    layer.ioasids.set(ioasid.id, ioasid);
    layer.parkedCount++;
    layer.charge(ioasid.owner.pid, 1);
  }

  private charge(pid: number, delta: number): void {
    const n = this.ownedBy(pid) + delta;
    if (n > 0) this.owned.set(pid, n);
    else this.owned.delete(pid);
  }

  pasidPool(): { allocated: number; parked: number; free: number } {
    return { allocated: this.ioasids.size - this.parkedCount, parked: this.parkedCount, free: this.pool.free };
  }

  pasidInfo(ppasid: number): PasidInfo {
    if (!Number.isInteger(ppasid) || ppasid <= NO_PASID || ppasid >= this.pasidLimit) {
      throw new KernelError('EINVAL', `pPASID ${ppasid} is outside [1, ${this.pasidLimit})`);
    }
    const ioasid = this.ioasids.get(ppasid);
    if (!ioasid) return { pasid: ppasid, state: 'free' };
    return {
      pasid: ppasid,
      state: ioasid.state === 'destroyed' ? 'parked' : 'allocated',
      ioasidState: ioasid.state,
      owner: { pid: ioasid.owner.pid, fd: ioasid.owner.fd },
      refs: ioasid.refs,
      holders: ioasid.describeHolders(),
    };
  }

  /** ALLOC's insert into the id map (FdIoasids.insert), and its undo. */
  adopt(ioasid: Ioasid): void {
    this.ioasids.set(ioasid.id, ioasid);
  }

  disown(ioasid: Ioasid): void {
    this.ioasids.delete(ioasid.id);
  }

  /** An allocated or parked ioasid by pPASID (a freed id is undefined). */
  get(ppasid: number): Ioasid | undefined {
    return this.ioasids.get(ppasid);
  }

  /** Every allocated or parked ioasid, in id order (audits, tests). */
  all(): Ioasid[] {
    return this.ioasids.values();
  }
}
