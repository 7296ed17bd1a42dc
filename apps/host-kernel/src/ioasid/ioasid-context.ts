import { KernelError } from '@app/shared/errno';
import { Tx } from '../fault-injection';
import { AddressSpace } from '../memory/address-space';
import { pageAligned } from '../memory/memory.constants';
import { KernelFile } from '../process/fd-table';
import { IovaPageTable, MapArgs } from './io-pagetable';
import { FaultQueueTable } from './fault-queues';
import { childKey, Holder, Ioasid, IoasidHolders, IoasidOwner, IoasidState } from './ioasid';
import { NESTED_ROOT_LIMIT } from './ioasid.constants';
import type { IoasidLayer } from './ioasid-layer';
import { MmPageTable, NestedPageTable, PageTable } from './page-tables';
import { BindSpec } from './pgtbl';

export interface IoasidInfo {
  ioasid: number;
  state: IoasidState;
  pgtbl: null | { kind: PageTable['kind']; id: number; parent?: number; root?: number | null; faultQueue?: number; mappedBytes?: number };
  refs: number;
  holders: IoasidHolders;
}

export type UnmapArgs = { iova: number; length: number } | { all: true };

/** The device holders of an ioasid that has none: one frozen array, not a new one per park. */
const NO_HOLDERS: readonly Extract<Holder, { kind: 'device' }>[] = Object.freeze([]);

/**
 * An open /dev/ioasid fd: many ioasids behind one fd (drivers/iommu/iommufd/ioas.c analogue).
 * Only ioasids not yet destroyed are visible here; parked ones live on in the IoasidLayer.
 */
export class IoasidContext implements KernelFile {
  readonly kind = 'ioasid';
  /** The ioasids this fd sees: a view of the layer's one map, not a second map (see FdIoasids). */
  readonly ioasids: FdIoasids;
  /** The fd's fault queues (iommufd FAULT objects), which nested page tables send their page requests to. */
  readonly faultQueues: FaultQueueTable;
  /** The owner every ioasid allocated here points at (one object per fd, not one per ioasid). */
  readonly owner: IoasidOwner;
  closed = false;

  constructor(
    private readonly layer: IoasidLayer,
    readonly ctxId: number,
    readonly pid: number,
    readonly fd: number,
    private readonly mm: AddressSpace,
  ) {
    this.faultQueues = new FaultQueueTable(fd);
    this.owner = Object.freeze({ ctxId, pid, fd });
    this.ioasids = new FdIoasids(layer, this.owner);
  }

  lookup(id: number): Ioasid {
    const ioasid = this.ioasids.get(id);
    if (!ioasid) throw new KernelError('ENOENT', `ioasid ${id} does not exist in ioasid fd ${this.fd}`);
    return ioasid;
  }

  /** IOASID_ALLOC */
  alloc(tx: Tx): number {
    const ioasid = this.layer.allocPasid(tx, this.owner);
    tx.doOn('ioasid.insert', this.ioasids, ioasid, FdIoasids.insert, FdIoasids.remove);
    return ioasid.id;
  }

  list(): { ioasid: number; state: IoasidState }[] {
    return [...this.ioasids.values()].sort((a, b) => a.id - b.id).map((i) => ({ ioasid: i.id, state: i.state }));
  }

  info(id: number): IoasidInfo {
    const ioasid = this.lookup(id);
    const t = ioasid.pgtbl;
    let pgtbl: IoasidInfo['pgtbl'] = null;
    if (t?.kind === 'iova') pgtbl = { kind: t.kind, id: t.id, mappedBytes: t.mappedBytes };
    else if (t?.kind === 'mm') pgtbl = { kind: t.kind, id: t.id };
    else if (t?.kind === 'nested') pgtbl = { kind: t.kind, id: t.id, parent: t.parent.ppasid, root: t.root, ...(t.iopf ? { faultQueue: t.iopf.id } : {}) };
    return { ioasid: id, state: ioasid.state, pgtbl, refs: ioasid.refs, holders: ioasid.describeHolders() };
  }

  /** IOASID_BIND_PGTBL: once per ioasid (EBUSY); a nested one pins its iova parent and uses its fault queue. */
  bind(tx: Tx, id: number, spec: BindSpec): void {
    const ioasid = this.lookup(id);
    if (typeof spec !== 'object' || spec === null) throw new KernelError('EINVAL', `BIND_PGTBL needs a page-table spec`);
    if (ioasid.state !== 'allocated') throw new KernelError('EBUSY', `ioasid ${id} already has a ${ioasid.pgtbl?.kind} page table`);
    let parent: Ioasid | null = null;
    let root: number | null = null;
    if (spec.kind === 'nested') {
      const p = this.ioasids.get(spec.parent);
      if (!p || p.state !== 'bound' || p.pgtbl?.kind !== 'iova') {
        throw new KernelError('EINVAL', `nested parent ${spec.parent} is not a bound iova ioasid of ioasid fd ${this.fd}`);
      }
      parent = p;
      if (spec.root !== undefined && spec.root !== null) {
        if (!pageAligned(spec.root) || spec.root >= NESTED_ROOT_LIMIT) {
          throw new KernelError('EINVAL', `nested root 0x${Number(spec.root).toString(16)} is not a 4 KiB aligned GPA below 2^52`);
        }
        root = spec.root;
      }
    } else if (spec.kind !== 'mm' && spec.kind !== 'iova') {
      throw new KernelError('EINVAL', `unknown page-table kind ${String((spec as { kind: unknown }).kind)}`);
    }
    // The iommufd FAULT object a nested hwpt is allocated with (IOMMU_HWPT_FAULT_ID_VALID): a queue of this fd.
    const queue = spec.kind === 'nested' && spec.faultQueue !== undefined ? this.faultQueues.lookup(spec.faultQueue) : null;
    const pgtblId = this.layer.newPgtblId(tx);
    let pgtbl: PageTable;
    if (spec.kind === 'mm') pgtbl = new MmPageTable(pgtblId, id, this.pid, this.mm);
    else if (spec.kind === 'iova') pgtbl = new IovaPageTable(pgtblId, id);
    else pgtbl = new NestedPageTable(pgtblId, id, root, (parent as Ioasid).pgtbl as IovaPageTable, queue);
    if (parent) this.layer.hold(tx, parent, { kind: 'child', key: childKey(id), ioasid: id });
    queue?.hold(tx);
    tx.do(
      'ioasid.bind',
      () => {
        ioasid.state = 'bound';
        ioasid.pgtbl = pgtbl;
        ioasid.parent = parent;
      },
      () => {
        ioasid.state = 'allocated';
        ioasid.pgtbl = null;
        ioasid.parent = null;
      },
    );
  }

  /** IOASID_MAP_DMA (iommufd IOAS_MAP with a fixed IOVA); pins the frames behind hva. */
  map(tx: Tx, id: number, a: MapArgs): number {
    return this.boundIova(id).map(tx, this.mm, a);
  }

  /** IOASID_UNMAP_DMA: whole areas only, or everything; returns the bytes unmapped. */
  unmap(tx: Tx, id: number, a: UnmapArgs): number {
    const table = this.boundIova(id);
    let bytes: number;
    let range: { iova: number; length: number } | null = null;
    if ('all' in a) {
      if (a.all !== true) throw new KernelError('EINVAL', `unmap: "all" must be true`);
      bytes = table.unmapAll(tx);
    } else {
      bytes = table.unmap(tx, a.iova, a.length);
      range = { iova: a.iova, length: a.length };
    }
    const ioasid = this.lookup(id);
    if (bytes > 0) tx.defer(() => this.layer.flush(ioasid, range, 'unmap'));
    return bytes;
  }

  /** IOASID_INVALIDATE: flush the IOTLB for a bound ioasid (the guest changed its first-level table). */
  invalidate(id: number, range?: { iova: number; length: number }): void {
    const ioasid = this.lookup(id);
    if (ioasid.state !== 'bound') throw new KernelError('EINVAL', `ioasid ${id} has no page table to invalidate`);
    if (range !== undefined && (!Number.isSafeInteger(range.iova) || !Number.isSafeInteger(range.length) || range.iova < 0 || range.length <= 0)) {
      throw new KernelError('EINVAL', `invalidate range needs iova >= 0 and length > 0`);
    }
    this.layer.flush(ioasid, range ?? null, 'invalidate');
  }

  /** IOASID_DESTROY: EBUSY while live nested children sit on it; otherwise park it. */
  destroy(tx: Tx, id: number): void {
    const ioasid = this.lookup(id);
    const live = ioasid.describeHolders().children.filter((c) => this.ioasids.has(c));
    if (live.length > 0) throw new KernelError('EBUSY', `ioasid ${id} is the parent of nested ioasid(s) ${live.join(', ')}; destroy them first`);
    this.park(tx, ioasid);
  }

  /**
   * fd close: destroy every ioasid of this fd, nested children before their parents. Unlike DESTROY, the
   * device attachments are detached too (block → drain → remove route → drop reference, as DISALLOW): once
   * the fd is gone nobody could DISALLOW them (that needs this fd), so they would pin the PASID and keep the
   * device's route slot busy until the device fd closed. KVM entries still hold theirs until UNMAP_PASID.
   */
  release(tx: Tx): void {
    // Nested first, each kind by id: ids sorted as numbers, no comparator (an fd may hold 2^20 of them).
    const nested: number[] = [];
    const rest: number[] = [];
    for (const ioasid of this.ioasids.values()) (ioasid.pgtbl?.kind === 'nested' ? nested : rest).push(ioasid.id);
    for (const ids of [nested, rest]) {
      for (const id of Float64Array.from(ids).sort()) this.park(tx, this.ioasids.get(id) as Ioasid, 'detach');
    }
    this.faultQueues.releaseAll(tx);
    tx.do('ioasid.close', () => (this.closed = true), () => (this.closed = false));
  }

  /**
   * Drop the fd's reference: block and drain every device route at once (or detach them: fd close), wipe
   * the table (unpinning its pages), hide the id. It stays parked, out of the pool, until its last holder lets go.
   */
  private park(tx: Tx, ioasid: Ioasid, devices: 'revoke' | 'detach' = 'revoke'): void {
    const attached =
      ioasid.holderCount === 0
        ? NO_HOLDERS
        : [...ioasid.holders()].filter((h) => h.kind === 'device').sort((a, b) => Number(a.mode === 'rid') - Number(b.mode === 'rid') || a.key.localeCompare(b.key));
    for (const holder of attached) {
      if (devices === 'detach') holder.detach(tx);
      else holder.revoke(tx);
    }
    const pgtbl = ioasid.pgtbl;
    if (pgtbl) {
      tx.do('pgtbl.destroy', () => (pgtbl.destroyed = true), () => (pgtbl.destroyed = false));
      if (pgtbl.kind === 'iova') pgtbl.unmapAll(tx);
      // Its routes are blocked and drained (their page requests answered): the table no longer uses its queue.
      if (pgtbl.kind === 'nested') pgtbl.iopf?.put(tx);
    }
    this.layer.park(tx, ioasid);
    tx.doOn('ctx.hide', this.ioasids, ioasid, FdIoasids.unlink, FdIoasids.link);
    tx.emit({ kind: 'ioasid-destroyed', pid: this.pid, ppasid: ioasid.id, refs: ioasid.refs });
    if (pgtbl) tx.defer(() => this.layer.flush(ioasid, null, 'destroy'));
    this.layer.freeIfUnused(tx, ioasid);
  }

  private boundIova(id: number): IovaPageTable {
    const ioasid = this.lookup(id);
    if (ioasid.state !== 'bound' || !ioasid.pgtbl) throw new KernelError('EINVAL', `ioasid ${id} has no page table (BIND_PGTBL first)`);
    if (ioasid.pgtbl.kind !== 'iova') throw new KernelError('EINVAL', `ioasid ${id} is bound to a ${ioasid.pgtbl.kind} table; MAP/UNMAP need iova`);
    return ioasid.pgtbl;
  }
}

/**
 * An fd's live ioasids: a lookup is the layer's one id map plus an owner check (the owner object is one per fd), as
 * iommufd's one object xarray with typed lookups; iterating (list, close) walks this fd's own list, linked through
 * the ioasids themselves, so it costs what the fd holds, never the whole PASID space another tenant may fill.
 */
export class FdIoasids {
  private head: Ioasid | null = null;

  constructor(
    private readonly layer: IoasidLayer,
    private readonly owner: IoasidOwner,
  ) {}

  get(id: number): Ioasid | undefined {
    const ioasid = this.layer.get(id);
    return ioasid !== undefined && ioasid.owner === this.owner && ioasid.state !== 'destroyed' ? ioasid : undefined;
  }

  has(id: number): boolean {
    return this.get(id) !== undefined;
  }

  /** The fd's live ioasids, newest first (callers that need an order sort). */
  *values(): IterableIterator<Ioasid> {
    for (let at = this.head; at !== null; at = at.fdNext) yield at;
  }

  // The Tx steps, as plain functions (no closure per call): ALLOC's insert (undone by remove), DESTROY's unlink
  // (undone by link; the ioasid stays in the layer's map, parked).
  static insert(list: FdIoasids, ioasid: Ioasid): void {
    list.layer.adopt(ioasid);
    FdIoasids.link(list, ioasid);
  }

  static remove(list: FdIoasids, ioasid: Ioasid): void {
    FdIoasids.unlink(list, ioasid);
    list.layer.disown(ioasid);
  }

  static link(list: FdIoasids, ioasid: Ioasid): void {
    ioasid.fdPrev = null;
    ioasid.fdNext = list.head;
    if (list.head) list.head.fdPrev = ioasid;
    list.head = ioasid;
  }

  static unlink(list: FdIoasids, ioasid: Ioasid): void {
    if (ioasid.fdPrev) ioasid.fdPrev.fdNext = ioasid.fdNext;
    else list.head = ioasid.fdNext;
    if (ioasid.fdNext) ioasid.fdNext.fdPrev = ioasid.fdPrev;
    ioasid.fdPrev = ioasid.fdNext = null;
  }
}
