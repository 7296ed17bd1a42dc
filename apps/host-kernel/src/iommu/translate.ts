import { KernelError } from '@app/shared/errno';
import { PAGE_SIZE } from '@app/shared/x86/pte';
import { walk4Level, type WalkFaultReason, type WalkMemory } from '@app/shared/x86/walk';
import { CANONICAL_LIMIT, PHYS_ADDR_LIMIT } from '@app/shared/x86/x86.constants';
import type { FaultReason } from './iommu.constants';
import type { Iotlb, IotlbAccess } from './iotlb';

/** What the IOMMU sees of an ioasid's page table (implemented by the control plane). */
export type PageTableView =
  | { kind: 'iova'; id: number; destroyed: boolean; lookup(iova: number): { hpa: number; read: boolean; write: boolean } | null }
  | { kind: 'mm'; id: number; destroyed: boolean; lookup(hva: number): { hpa: number; writable: boolean } | null }
  | { kind: 'nested'; id: number; destroyed: boolean; root: number | null; parent: PageTableView };

export interface PhysicalMemoryPort {
  read(hpa: number, length: number): Buffer;
  write(hpa: number, data: Buffer): void;
}

export type TranslateResult = { ok: true; hpa: number } | { ok: false; reason: FaultReason };
type PageResult = { ok: true; hpaPage: number; read: boolean; write: boolean; user: boolean } | { ok: false; reason: FaultReason };

const fault = (reason: FaultReason): { ok: false; reason: FaultReason } => ({ ok: false, reason });

const FIRST_STAGE_FAULTS: Record<Exclude<WalkFaultReason, 'table-unreachable'>, FaultReason> = {
  'not-present': 'fl-not-present',
  'reserved-bits': 'fl-reserved',
  'large-page': 'fl-large-page',
  'write-denied': 'fl-write-denied',
  'user-denied': 'fl-privilege-denied',
  'non-canonical': 'fl-non-canonical',
};

/** Second stage only (an iova table): GPA/IOVA → HPA with R/W permission. */
function walkSecondStage(view: Extract<PageTableView, { kind: 'iova' }>, address: number, write: boolean): PageResult {
  if (address >= PHYS_ADDR_LIMIT) return fault('address-beyond-width');
  const m = view.lookup(address - (address % PAGE_SIZE));
  if (!m) return fault('sl-not-present');
  if (write ? !m.write : !m.read) return fault(write ? 'sl-write-denied' : 'sl-read-denied');
  return { ok: true, hpaPage: m.hpa, read: m.read, write: m.write, user: true }; // no U/S in the second stage
}

/** Host SVA: the process's own page table (first stage over host memory); every mapping in it is a user page. */
function walkMm(view: Extract<PageTableView, { kind: 'mm' }>, address: number, write: boolean): PageResult {
  if (address >= CANONICAL_LIMIT) return fault('fl-non-canonical');
  const m = view.lookup(address - (address % PAGE_SIZE));
  if (!m) return fault('fl-not-present');
  if (write && !m.writable) return fault('fl-write-denied');
  return { ok: true, hpaPage: m.hpa, read: true, write: m.writable, user: true };
}

/**
 * Nested (VT-d §3.8): the guest's first-stage table is walked with walk4Level and every table access — reads
 * and A/D writes — is itself translated GPA → HPA through the parent (via the IOTLB under the parent's id).
 * A table page the parent does not map is 'sl-table-not-present', distinct from a first-stage miss.
 */
function walkNested(view: Extract<PageTableView, { kind: 'nested' }>, address: number, access: IotlbAccess, mem: PhysicalMemoryPort, iotlb: Iotlb): PageResult {
  const write = access.write;
  const parent = view.parent;
  if (parent.kind !== 'iova') return fault('pasid-entry-invalid');
  if (parent.destroyed) return fault('translation-blocked');
  if (view.root === null) return walkSecondStage(parent, address, write); // pass-through: the PASID sees GPA space
  let tableFault: FaultReason | null = null;
  const guestMemory: WalkMemory = {
    readU64(gpa) {
      const t = translate(parent, gpa, { write: false, privileged: true }, mem, iotlb);
      if (!t.ok) {
        tableFault = t.reason === 'sl-not-present' || t.reason === 'sl-read-denied' ? 'sl-table-not-present' : t.reason;
        return null;
      }
      return mem.read(t.hpa, 8).readBigUInt64LE(0);
    },
    writeU64(gpa, value) {
      // A/D updates need write permission in the second stage (VT-d §3.8); failing that is SFL.10.
      const t = translate(parent, gpa, { write: true, privileged: true }, mem, iotlb);
      if (!t.ok) {
        tableFault = t.reason === 'translation-blocked' ? t.reason : 'fl-ad-update-failed';
        return false;
      }
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(value, 0);
      mem.write(t.hpa, b);
      return true;
    },
  };
  // The request's privilege (PR) is checked against the guest's U/S bits (VT-d first stage, SGN.2).
  const w = walk4Level(view.root, address, { write, user: !access.privileged }, guestMemory);
  if (!w.ok) {
    if (w.reason !== 'table-unreachable') return fault(FIRST_STAGE_FAULTS[w.reason]);
    return fault(tableFault ?? (w.level === 4 ? 'fl-root-access-error' : 'fl-table-access-error'));
  }
  const s = walkSecondStage(parent, w.address, write);
  if (!s.ok) return s;
  // Write permission is cached only once D is set (this was a write), so a later write re-walks and sets D.
  // U/S is cached so a supervisor page's entry cannot later serve a user request (IotlbEntry.user).
  return { ok: true, hpaPage: s.hpaPage, read: s.read, write: write && w.writable && s.write, user: w.user };
}

/**
 * Translates one device access. The IOTLB is consulted first: a hit with the needed permission is used even
 * if the table changed since (stale until invalidated, as on hardware); a hit lacking the permission re-walks.
 * Only successful translations are cached. null view → 'no-route'; a destroyed table → 'translation-blocked'.
 * access.privileged: the request's PR bit (default false: a user-mode request, as every ENQCMD is).
 */
export function translate(view: PageTableView | null, address: number, access: IotlbAccess, mem: PhysicalMemoryPort, iotlb: Iotlb): TranslateResult {
  if (view === null) return fault('no-route');
  if (view.destroyed) return fault('translation-blocked');
  if (!Number.isSafeInteger(address) || address < 0) return fault('address-beyond-width');
  const offset = address % PAGE_SIZE;
  const cached = iotlb.lookup(view.id, address, access);
  if (cached) return { ok: true, hpa: cached.hpaPage + offset };
  let r: PageResult;
  if (view.kind === 'iova') r = walkSecondStage(view, address, access.write);
  else if (view.kind === 'mm') r = walkMm(view, address, access.write);
  else r = walkNested(view, address, access, mem, iotlb);
  if (!r.ok) return r;
  iotlb.insert(view.id, address, { hpaPage: r.hpaPage, read: r.read, write: r.write, user: r.user });
  return { ok: true, hpa: r.hpaPage + offset };
}

export type DmaResult = { ok: true; data?: Buffer } | { ok: false; address: number; reason: FaultReason };

/**
 * One device access of `length` bytes at `address`: every page is translated first and bytes move only if all
 * succeed, so a faulting access transfers nothing. The fault address is the first byte of the access inside
 * the faulting page. A read returns `data`; a write takes `data` of exactly `length` bytes. `privileged` is
 * the request's PR bit (supervisor request); a user request to a supervisor page faults.
 */
export function dmaAccess(
  view: PageTableView | null,
  address: number,
  length: number,
  write: boolean,
  data: Buffer | undefined,
  mem: PhysicalMemoryPort,
  iotlb: Iotlb,
  privileged = false,
): DmaResult {
  if (!Number.isSafeInteger(address) || address < 0 || !Number.isSafeInteger(length) || length < 0 || address + length > Number.MAX_SAFE_INTEGER) {
    throw new KernelError('EINVAL', `DMA range [${address}, +${length}) is not a valid address range`);
  }
  if (write && (!data || data.length !== length)) {
    throw new KernelError('EINVAL', `DMA write of ${length} bytes needs exactly ${length} bytes of data, got ${data?.length ?? 'none'}`);
  }
  const chunks: Array<{ hpa: number; offset: number; size: number }> = [];
  for (let at = address; at < address + length; ) {
    const size = Math.min(PAGE_SIZE - (at % PAGE_SIZE), address + length - at);
    const t = translate(view, at, { write, privileged }, mem, iotlb);
    if (!t.ok) return { ok: false, address: at, reason: t.reason };
    chunks.push({ hpa: t.hpa, offset: at - address, size });
    at += size;
  }
  if (write) {
    for (const c of chunks) mem.write(c.hpa, (data as Buffer).subarray(c.offset, c.offset + c.size));
    return { ok: true };
  }
  const out = Buffer.alloc(length);
  for (const c of chunks) mem.read(c.hpa, c.size).copy(out, c.offset);
  return { ok: true, data: out };
}
