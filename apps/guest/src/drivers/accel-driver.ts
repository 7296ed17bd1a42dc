// The accelerator driver, as a DSA user of a shared work queue does it (Linux idxd + ENQCMD): the
// completion record lives in the submitting process's memory (32-byte aligned slots in a page mapped
// on demand), IA32_PASID = valid | vPASID is loaded on the vCPU (the per-task MSR restored when the task
// runs), ENQCMD is retried while the queue is full (ZF=1), then the record is polled until the device
// writes a non-zero status. WRMSR → ENQCMD (with its retries) runs under a per-vCPU lock (vcpu-lock.ts). A DMA
// fault the vIOMMU reports on a record being waited for (deviceFault) ends the wait: the device will never write it.
import type { Descriptor, DescriptorOp } from '@app/shared/contract/host-kernel';
import { isDmaFault, type VirtualFault } from '@app/shared/contract/vmm';
import { CompletionStatus, decodeCompletion } from '@app/shared/dsa/descriptor';
import { KernelError } from '@app/shared/errno';
import { IA32_PASID_VALID } from '@app/shared/x86/msr.constants';
import type { SvaDriver } from '../iommu/sva';
import type { GuestMm } from '../mm/guest-mm';
import { PAGE_SIZE } from '../mm/mm.constants';
import type { VmmPort } from '../vmm.port';
import {
  COMPLETION_MAX_POLLS,
  COMPLETION_RECORD_ALIGN,
  COMPLETION_RECORD_SIZE,
  COMPLETION_STATUS_NONE,
  DESCRIPTOR_OPS,
  ENQCMD_MAX_TRIES,
} from './drivers.constants';
import { VcpuLocks } from './vcpu-lock';

export interface SubmitRequest {
  op: DescriptorOp;
  src?: number;
  dst?: number;
  length?: number;
  pattern?: number;
}

export type SubmitResult =
  | { result: 'accepted'; status: number; bytes: number; faultAddress?: number }
  /**
   * ENQCMD accepted, but the record still read status 0 when the driver stopped polling: the device holds the
   * descriptor (a block-on-fault descriptor waiting on a page request nobody answers, or a stalled engine). Not
   * an error of the kernel: the program learns where its record is and may look again (GET .../memory).
   */
  | { result: 'pending'; completion: number; polls: number }
  | { result: 'gp'; reason: string };

export interface AccelOptions {
  maxTries?: number;
  maxPolls?: number;
  /**
   * How the driver waits before retry or poll number `n` (from 1; default: one macrotask). Over REST the guest paces
   * its polls (drivers/poll-pacing.ts): reading the record is a load from mapped RAM, no round trip spaces them.
   */
  yield?: (n: number) => Promise<void>;
}

const defaultYield = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A completion record being polled: on which device, for which vPASID (once loaded), and a fault that ends it. */
interface Waiter {
  vrid: number;
  completion: number;
  vpasid: number | null;
  fault: VirtualFault | null;
}

export class AccelDriver {
  /** pid → completion slots: page GVAs and the slots in use. */
  private readonly areas = new Map<number, { pages: number[]; busy: Set<number> }>();
  private readonly maxTries: number;
  private readonly maxPolls: number;
  private readonly pause: (n: number) => Promise<void>;
  private readonly vcpus = new VcpuLocks();
  private readonly waiting = new Set<Waiter>();

  constructor(
    private readonly port: Pick<VmmPort, 'wrmsr' | 'enqcmd'>,
    private readonly mm: GuestMm,
    private readonly sva: Pick<SvaDriver, 'vpasidOf'>,
    opts: AccelOptions = {},
    /** How a completion page is mapped (the OS passes its locked mmap). */
    private readonly mapPage: (pid: number, length: number) => Promise<number> = (pid, length) => mm.mmap(pid, length),
  ) {
    this.maxTries = opts.maxTries ?? ENQCMD_MAX_TRIES;
    this.maxPolls = opts.maxPolls ?? COMPLETION_MAX_POLLS;
    this.pause = opts.yield ?? defaultYield;
  }

  async submit(pid: number, vrid: number, req: SubmitRequest, vcpu = 0): Promise<SubmitResult> {
    this.mm.process(pid);
    checkRequest(req);
    const completion = await this.allocSlot(pid);
    let done = false;
    // Registered before the portal write: the fault can be reported before the ENQCMD's own answer arrives.
    const waiter: Waiter = { vrid, completion, vpasid: null, fault: null };
    this.waiting.add(waiter);
    try {
      await this.mm.write(pid, completion, Buffer.alloc(COMPLETION_RECORD_SIZE));
      // SVA work blocks on faults: a page not there yet is asked for (PRI) and the device waits for it.
      const descriptor: Descriptor = { ...req, completion, blockOnFault: true };
      const enq = await this.enqueue(pid, vrid, vcpu, descriptor, waiter);
      if (enq.result === 'gp') {
        done = true;
        return enq;
      }
      if (enq.result === 'full') {
        done = true;
        throw new KernelError('EAGAIN', `work queue of vrid 0x${vrid.toString(16)} stayed full for ${this.maxTries} tries`);
      }
      // Polling the record needs no vCPU state: the lock is already released, so other tasks may submit.
      for (let poll = 0; poll < this.maxPolls; poll++) {
        const rec = decodeCompletion(await this.mm.read(pid, completion, COMPLETION_RECORD_SIZE));
        if (rec.status !== COMPLETION_STATUS_NONE) {
          done = true;
          const out: SubmitResult = { result: 'accepted', status: rec.status, bytes: rec.bytesCompleted };
          // A page-fault record carries the faulting address (DESIGN §5), 0 included (a null pointer).
          if (rec.status === CompletionStatus.pageFault) out.faultAddress = rec.faultAddress;
          return out;
        }
        const fault = waiter.fault;
        if (fault && fault.vpasid === waiter.vpasid) {
          // The record's write itself faulted: the device reports nothing more (DSA drops the record).
          done = true;
          throw new KernelError('EFAULT', `vrid 0x${vrid.toString(16)} could not write the completion record (${fault.reason}): is the process bound to this device?`);
        }
        await this.pause(poll + 1);
      }
      return { result: 'pending', completion, polls: this.maxPolls };
    } finally {
      this.waiting.delete(waiter);
      // A timed-out record may still be written by the device later: its slot is never reused.
      if (done) this.areas.get(pid)?.busy.delete(completion);
    }
  }

  /**
   * A fault record the vIOMMU reported (the guest's lifeline carries them, as the VT-d fault event interrupt): a
   * DMA write fault on a completion record being waited for means that record will never be written.
   */
  deviceFault(f: VirtualFault): void {
    if (!isDmaFault(f) || f.access !== 'write' || f.address === undefined) return;
    for (const w of this.waiting) {
      if (w.vrid === f.vrid && f.address >= w.completion && f.address < w.completion + COMPLETION_RECORD_SIZE) w.fault = f;
    }
  }

  /**
   * WRMSR IA32_PASID then ENQCMD (retried while ZF=1), all under the vCPU's lock, so no other task's
   * IA32_PASID can be loaded in between and the descriptor always carries this process's vPASID.
   */
  private async enqueue(
    pid: number,
    vrid: number,
    vcpu: number,
    descriptor: Descriptor,
    waiter: Waiter,
  ): Promise<{ result: 'accepted' } | { result: 'full' } | { result: 'gp'; reason: string }> {
    const release = await this.vcpus.acquire(vcpu);
    try {
      // Read under the lock: the value loaded is the one this process owns now. A process without a
      // vPASID runs with IA32_PASID invalid, so ENQCMD raises #GP (SDM ENQCMD). After an unbind the process
      // keeps its vPASID (mm->pasid): ENQCMD then exits to KVM, which injects #GP (vPASID unmapped).
      const vpasid = this.sva.vpasidOf(pid);
      waiter.vpasid = vpasid;
      await this.port.wrmsr(vcpu, 'IA32_PASID', vpasid === null ? 0 : (IA32_PASID_VALID | vpasid) >>> 0);
      for (let attempt = 0; attempt < this.maxTries; attempt++) {
        if (attempt > 0) await this.pause(attempt);
        const r = await this.port.enqcmd(vcpu, vrid, descriptor);
        if (r.result === 'gp') return { result: 'gp', reason: r.reason ?? 'general protection' };
        if (r.result === 'accepted') return { result: 'accepted' };
      }
      return { result: 'full' };
    } finally {
      release();
    }
  }

  /** A free 32-byte-aligned completion slot in the process's memory (a new page when all are busy). */
  private async allocSlot(pid: number): Promise<number> {
    let area = this.areas.get(pid);
    if (!area) {
      area = { pages: [], busy: new Set() };
      this.areas.set(pid, area);
    }
    for (const page of area.pages) {
      for (let off = 0; off < PAGE_SIZE; off += COMPLETION_RECORD_ALIGN) {
        if (!area.busy.has(page + off)) {
          area.busy.add(page + off);
          return page + off;
        }
      }
    }
    const page = await this.mapPage(pid, PAGE_SIZE);
    area.pages.push(page);
    area.busy.add(page);
    return page;
  }
}

function checkRequest(req: SubmitRequest): void {
  if (!(DESCRIPTOR_OPS as readonly string[]).includes(req.op)) throw new KernelError('EINVAL', `unknown descriptor op ${String(req.op)}`);
  for (const key of ['src', 'dst', 'length', 'pattern'] as const) {
    const v = req[key];
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) throw new KernelError('EINVAL', `descriptor ${key} ${v} is not a non-negative integer`);
  }
}
