// Pending page requests of one VM in guest terms (VT-d page request queue, §7.5): numbered, answered once.
import { KernelError } from '@app/shared/errno';
import type { VirtualPageRequest } from './viommu.types';

export class PageRequestQueue {
  private seq = 0;
  private readonly pending: VirtualPageRequest[] = [];

  push(r: Omit<VirtualPageRequest, 'seq'>): VirtualPageRequest {
    const pr: VirtualPageRequest = { seq: ++this.seq, ...r };
    this.pending.push(pr);
    return { ...pr };
  }

  /** Removes and returns request `seq`; ENOENT when none is pending. */
  take(seq: number): VirtualPageRequest {
    const i = this.pending.findIndex((p) => p.seq === seq);
    if (i < 0) throw new KernelError('ENOENT', `no pending page request ${seq}`);
    return this.pending.splice(i, 1)[0];
  }

  list(): VirtualPageRequest[] {
    return this.pending.map((p) => ({ ...p }));
  }

  /** Drops every pending request (guest reset: nobody is left to answer them). */
  clear(): void {
    this.pending.length = 0;
  }
}
