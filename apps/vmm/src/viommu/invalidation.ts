// Validation of an invalidation batch before any descriptor runs (QEMU vtd_process_inv_desc() refuses an
// unknown type with an Invalidation Queue Error; here the whole call fails with EINVAL and nothing runs).
import { KernelError } from '@app/shared/errno';
import { PAGE_SIZE } from '@app/shared/x86/x86.constants';
import { INVALIDATION_QUEUE_DEPTH } from './viommu.constants';
import type { InvalidationDescriptor } from './viommu.types';

const FIELDS: Record<InvalidationDescriptor['type'], readonly string[]> = {
  'pasid-cache': ['type', 'vpasid'],
  piotlb: ['type', 'vpasid', 'addr', 'npages', 'length'],
  wait: ['type'],
};

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function optionalInt(d: Record<string, unknown>, key: string, i: number, min: number): number | undefined {
  const v = d[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
    throw new KernelError('EINVAL', `descriptor ${i}: ${key} ${String(v)} is not an integer ≥ ${min}`);
  }
  return v;
}

/** Checks every descriptor; returns typed copies. Throws EINVAL naming the first bad descriptor. */
export function parseInvalidationBatch(descriptors: unknown): InvalidationDescriptor[] {
  if (!Array.isArray(descriptors)) throw new KernelError('EINVAL', 'descriptors must be an array');
  if (descriptors.length > INVALIDATION_QUEUE_DEPTH) {
    throw new KernelError('EINVAL', `${descriptors.length} descriptors exceed the queue depth ${INVALIDATION_QUEUE_DEPTH}`);
  }
  return descriptors.map((d: unknown, i): InvalidationDescriptor => {
    if (!isRecord(d) || typeof d.type !== 'string' || !Object.prototype.hasOwnProperty.call(FIELDS, d.type)) {
      throw new KernelError('EINVAL', `descriptor ${i}: unknown invalidation type ${isRecord(d) ? String(d.type) : typeof d}`);
    }
    const type = d.type as InvalidationDescriptor['type'];
    const extra = Object.keys(d).filter((k) => !FIELDS[type].includes(k));
    if (extra.length > 0) throw new KernelError('EINVAL', `descriptor ${i} (${type}): unknown field ${extra[0]}`);
    if (type === 'wait') return { type };
    const vpasid = optionalInt(d, 'vpasid', i, 0);
    if (type === 'pasid-cache') return vpasid === undefined ? { type } : { type, vpasid };
    if (vpasid === undefined) throw new KernelError('EINVAL', `descriptor ${i} (piotlb): vpasid is required`);
    const addr = optionalInt(d, 'addr', i, 0);
    const npages = optionalInt(d, 'npages', i, 1);
    const length = optionalInt(d, 'length', i, 1);
    if (npages !== undefined && length !== undefined) throw new KernelError('EINVAL', `descriptor ${i} (piotlb): give npages or length, not both`);
    if ((npages !== undefined || length !== undefined) !== (addr !== undefined)) {
      throw new KernelError('EINVAL', `descriptor ${i} (piotlb): addr and a size go together`);
    }
    if (addr !== undefined && addr % PAGE_SIZE !== 0) throw new KernelError('EINVAL', `descriptor ${i} (piotlb): addr 0x${addr.toString(16)} is not page aligned`);
    const out: InvalidationDescriptor = { type, vpasid };
    if (addr !== undefined) Object.assign(out, { addr }, npages !== undefined ? { npages } : { length });
    return out;
  });
}

/** The byte range a piotlb descriptor names, or null for "all of this vPASID". Length rounds up to pages. */
export function piotlbRange(d: Extract<InvalidationDescriptor, { type: 'piotlb' }>): { iova: number; length: number } | null {
  if (d.addr === undefined) return null;
  const bytes = d.npages !== undefined ? d.npages * PAGE_SIZE : (d.length ?? PAGE_SIZE);
  return { iova: d.addr, length: Math.ceil(bytes / PAGE_SIZE) * PAGE_SIZE };
}
