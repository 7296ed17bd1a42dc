import { KernelError } from '@app/shared/errno';
import { PAGE_SIZE } from '@app/shared/x86/x86.constants';
import { pageBaseOf, pageOffsetOf } from '@app/shared/x86/page-math';
import { newWalkOutcome, walkFromPt, walkInto, type WalkFaultReason, type WalkWords } from '@app/shared/x86/walk';
import { CANONICAL_LIMIT, PHYS_ADDR_LIMIT } from '@app/shared/x86/x86.constants';
import { FAULT_REASONS, type FaultReason } from './iommu.constants';
import type { Iotlb, IotlbAccess } from './iotlb';

/** What the IOMMU sees of an ioasid's page table (implemented by the control plane). */
export type PageTableView =
  | { kind: 'iova'; id: number; destroyed: boolean; lookup(iova: number): { hpa: number; read: boolean; write: boolean } | null }
  | { kind: 'mm'; id: number; destroyed: boolean; lookup(hva: number): { hpa: number; writable: boolean } | null }
  | { kind: 'nested'; id: number; destroyed: boolean; root: number | null; parent: PageTableView };

/** The physical memory a walk reads its tables from (and sets A/D in); whole accesses for dmaAccess. */
export interface PhysicalMemoryPort {
  read(hpa: number, length: number): Buffer;
  write(hpa: number, data: Buffer): void;
  /** Little-endian u32 (half a page-table entry; never crosses a frame). */
  readU32(hpa: number): number;
  writeU32(hpa: number, value: number): void;
  /** A page-table entry's two halves, out[0] = readU32(hpa) and out[1] = readU32(hpa + 4) (one frame lookup). */
  readPte(hpa: number, out: Uint32Array): void;
}

export type TranslateResult = { ok: true; hpa: number } | { ok: false; reason: FaultReason };

/**
 * The data plane speaks numbers: a translation is an hpa (>= 0) or a negative fault code, one per VT-d fault
 * reason (faultCode / faultReasonOf), so the hot path allocates nothing.
 */
const REASONS = Object.keys(FAULT_REASONS) as FaultReason[];
export function faultCode(reason: FaultReason): number {
  const i = REASONS.indexOf(reason);
  if (i < 0) throw new RangeError(`unknown fault reason ${reason}`);
  return -1 - i;
}
export const faultReasonOf = (code: number): FaultReason => REASONS[-1 - code];

const NO_ROUTE = faultCode('no-route');
const BLOCKED = faultCode('translation-blocked');
const BEYOND_WIDTH = faultCode('address-beyond-width');
const SL_NOT_PRESENT = faultCode('sl-not-present');
const SL_READ_DENIED = faultCode('sl-read-denied');
const SL_WRITE_DENIED = faultCode('sl-write-denied');
const SL_TABLE_NOT_PRESENT = faultCode('sl-table-not-present');
const FL_NON_CANONICAL = faultCode('fl-non-canonical');
const FL_NOT_PRESENT = faultCode('fl-not-present');
const FL_WRITE_DENIED = faultCode('fl-write-denied');
const FL_AD_UPDATE_FAILED = faultCode('fl-ad-update-failed');
const FL_ROOT_ACCESS = faultCode('fl-root-access-error');
const FL_TABLE_ACCESS = faultCode('fl-table-access-error');
const PASID_ENTRY_INVALID = faultCode('pasid-entry-invalid');

const FIRST_STAGE_FAULTS: Record<Exclude<WalkFaultReason, 'table-unreachable'>, number> = {
  'not-present': FL_NOT_PRESENT,
  'reserved-bits': faultCode('fl-reserved'),
  'large-page': faultCode('fl-large-page'),
  'write-denied': FL_WRITE_DENIED,
  'user-denied': faultCode('fl-privilege-denied'),
  'non-canonical': FL_NON_CANONICAL,
};

/**
 * What the last successful walk allows, besides its frame (the IOTLB caches it). Module state rather than a result
 * object: walks are synchronous and never re-enter one another (a nested table's parent is an iova table).
 */
let walkRead = false;
let walkWrite = false;
let walkUser = false;

/** Second stage only (an iova table): GPA/IOVA → HPA page with R/W permission, or a fault code. */
function walkSecondStage(view: Extract<PageTableView, { kind: 'iova' }>, address: number, write: boolean): number {
  if (address >= PHYS_ADDR_LIMIT) return BEYOND_WIDTH;
  const m = view.lookup(pageBaseOf(address));
  if (!m) return SL_NOT_PRESENT;
  if (write ? !m.write : !m.read) return write ? SL_WRITE_DENIED : SL_READ_DENIED;
  walkRead = m.read;
  walkWrite = m.write;
  walkUser = true; // no U/S in the second stage
  return m.hpa;
}

/** Host SVA: the process's own page table (first stage over host memory); every mapping in it is a user page. */
function walkMm(view: Extract<PageTableView, { kind: 'mm' }>, address: number, write: boolean): number {
  if (address >= CANONICAL_LIMIT) return FL_NON_CANONICAL;
  const m = view.lookup(pageBaseOf(address));
  if (!m) return FL_NOT_PRESENT;
  if (write && !m.writable) return FL_WRITE_DENIED;
  walkRead = true;
  walkWrite = m.writable;
  walkUser = true;
  return m.hpa;
}

/**
 * The guest's table as the nested walk reads it: every entry access translated GPA → HPA through the parent (via
 * the IOTLB under the parent's id), read and A/D-updated as u32 halves. One instance, re-armed per walk.
 */
class ParentTranslatedTables implements WalkWords {
  parent!: Extract<PageTableView, { kind: 'iova' }>;
  mem!: PhysicalMemoryPort;
  iotlb!: Iotlb;
  /** Why the last table access failed (0: none). */
  tableFault = 0;

  readEntry(gpa: number, out: Uint32Array): boolean {
    const hpa = translateHpa(this.parent, gpa, false, true, this.mem, this.iotlb);
    if (hpa < 0) {
      this.tableFault = hpa === SL_NOT_PRESENT || hpa === SL_READ_DENIED ? SL_TABLE_NOT_PRESENT : hpa;
      return false;
    }
    this.mem.readPte(hpa, out);
    return true;
  }

  writeLow(gpa: number, low: number): boolean {
    // A/D updates need write permission in the second stage (VT-d §3.8); failing that is SFL.10.
    const hpa = translateHpa(this.parent, gpa, true, true, this.mem, this.iotlb);
    if (hpa < 0) {
      this.tableFault = hpa === BLOCKED ? hpa : FL_AD_UPDATE_FAILED;
      return false;
    }
    this.mem.writeU32(hpa, low);
    return true;
  }
}
const tables = new ParentTranslatedTables();
const entry = new Uint32Array(2);
const walked = newWalkOutcome();

/**
 * Nested (VT-d §3.8): the guest's first-stage table is walked with walkInto and every table access — reads
 * and A/D writes — is itself translated GPA → HPA through the parent (via the IOTLB under the parent's id).
 * A table page the parent does not map is 'sl-table-not-present', distinct from a first-stage miss.
 */
function walkNested(view: Extract<PageTableView, { kind: 'nested' }>, address: number, write: boolean, privileged: boolean, mem: PhysicalMemoryPort, iotlb: Iotlb): number {
  const parent = view.parent;
  if (parent.kind !== 'iova') return PASID_ENTRY_INVALID;
  if (parent.destroyed) return BLOCKED;
  if (view.root === null) return walkSecondStage(parent, address, write); // pass-through: the PASID sees GPA space
  tables.parent = parent;
  tables.mem = mem;
  tables.iotlb = iotlb;
  tables.tableFault = 0;
  // The request's privilege (PR) is checked against the guest's U/S bits (VT-d first stage, SGN.2). A PDE cached
  // by an earlier walk of the same 2 MiB (iotlb.pde) leaves only the PTE to read; a walk past its PDE caches it,
  // even when the PTE then faults (the page a page request brings in is read from the PT at the retry).
  const root = view.root;
  const pde = iotlb.pde;
  const slot = pde.find(view.id, root, address);
  const ok =
    slot >= 0
      ? walkFromPt(pde.pt(slot), pde.writable(slot), pde.user(slot), address, write, !privileged, tables, entry, walked)
      : walkInto(root, address, write, !privileged, tables, entry, walked);
  if (slot < 0 && walked.pt >= 0) pde.insert(view.id, root, address, walked.pt, walked.ptWritable, walked.ptUser);
  if (!ok) {
    const reason = walked.reason as WalkFaultReason;
    if (reason !== 'table-unreachable') return FIRST_STAGE_FAULTS[reason];
    return tables.tableFault !== 0 ? tables.tableFault : walked.level === 4 ? FL_ROOT_ACCESS : FL_TABLE_ACCESS;
  }
  const writable = walked.writable;
  const user = walked.user;
  const s = walkSecondStage(parent, walked.address, write);
  if (s < 0) return s;
  // Write permission is cached only once D is set (this was a write), so a later write re-walks and sets D.
  // U/S is cached so a supervisor page's entry cannot later serve a user request (IotlbEntry.user).
  walkWrite = write && writable && walkWrite;
  walkUser = user;
  return s;
}

/**
 * Translates one device access to an hpa, or a negative fault code. The IOTLB is consulted first: a hit with the
 * needed permission is used even if the table changed since (stale until invalidated, as on hardware); a hit
 * lacking the permission re-walks. Only successful translations are cached. null view → 'no-route'; a destroyed
 * table → 'translation-blocked'. privileged: the request's PR bit (false: a user-mode request, as every ENQCMD is).
 */
export function translateHpa(view: PageTableView | null, address: number, write: boolean, privileged: boolean, mem: PhysicalMemoryPort, iotlb: Iotlb): number {
  if (view === null) return NO_ROUTE;
  if (view.destroyed) return BLOCKED;
  if (!Number.isSafeInteger(address) || address < 0) return BEYOND_WIDTH;
  const offset = pageOffsetOf(address);
  const cached = iotlb.hit(view.id, address, write, privileged);
  // A hit is the data plane's common case; the walk is a call of its own, so this stays small enough to inline.
  return cached >= 0 ? cached + offset : walkAndCache(view, address, write, privileged, mem, iotlb, offset);
}

/** translateHpa's IOTLB miss: the walk of the view's kind, cached on success. */
function walkAndCache(view: PageTableView, address: number, write: boolean, privileged: boolean, mem: PhysicalMemoryPort, iotlb: Iotlb, offset: number): number {
  let page: number;
  if (view.kind === 'iova') page = walkSecondStage(view, address, write);
  else if (view.kind === 'mm') page = walkMm(view, address, write);
  else page = walkNested(view, address, write, privileged, mem, iotlb);
  if (page < 0) return page;
  iotlb.insertPage(view.id, address, page, walkRead, walkWrite, walkUser);
  return page + offset;
}

/** translateHpa as a result object (probes, tests). */
export function translate(view: PageTableView | null, address: number, access: IotlbAccess, mem: PhysicalMemoryPort, iotlb: Iotlb): TranslateResult {
  const hpa = translateHpa(view, address, access.write, access.privileged === true, mem, iotlb);
  return hpa >= 0 ? { ok: true, hpa } : { ok: false, reason: faultReasonOf(hpa) };
}

export type DmaResult = { ok: true; data?: Buffer } | { ok: false; address: number; reason: FaultReason };

/**
 * One device access of `length` bytes at `address` (any length: the raw DMA of hw.dma): every page is translated
 * first and bytes move only if all succeed, so a faulting access transfers nothing. The fault address is the first
 * byte of the access inside the faulting page. A read returns `data`; a write takes `data` of exactly `length`
 * bytes. `privileged` is the request's PR bit (supervisor request); a user request to a supervisor page faults.
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
  const hpas: number[] = [];
  for (let at = address; at < address + length; at += PAGE_SIZE - (at % PAGE_SIZE)) {
    const hpa = translateHpa(view, at, write, privileged, mem, iotlb);
    if (hpa < 0) return { ok: false, address: at, reason: faultReasonOf(hpa) };
    hpas.push(hpa);
  }
  const out = write ? undefined : Buffer.alloc(length);
  let done = 0;
  for (const hpa of hpas) {
    const size = Math.min(PAGE_SIZE - (hpa % PAGE_SIZE), length - done);
    if (write) mem.write(hpa, (data as Buffer).subarray(done, done + size));
    else mem.read(hpa, size).copy(out as Buffer, done);
    done += size;
  }
  return write ? { ok: true } : { ok: true, data: out };
}
