// The accelerator driver, as a DSA user of a shared work queue does it (Linux idxd + ENQCMD): the
// completion record lives in the submitting process's memory (32-byte aligned slots in a page mapped
// on demand), IA32_PASID = valid | vPASID is loaded on the vCPU (the per-task MSR restored when the task
// runs), ENQCMD is retried while the queue is full (ZF=1), then the record is polled until the device
// writes a non-zero status.
import type { Descriptor, DescriptorOp } from '@app/shared/contract/host-kernel';
import { decodeCompletion } from '@app/shared/dsa/descriptor';
import { KernelError } from '@app/shared/errno';
import { IA32_PASID_VALID } from '../iommu/iommu.constants';
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

export interface SubmitRequest {
  op: DescriptorOp;
  src?: number;
  dst?: number;
  length?: number;
  pattern?: number;
}

export type SubmitResult =
  | { result: 'accepted'; status: number; bytes: number; faultAddress?: number }
  | { result: 'gp'; reason: string };

export interface AccelOptions {
  maxTries?: number;
  maxPolls?: number;
  /** How the driver waits between tries and polls (default: one macrotask). */
  yield?: () => Promise<void>;
}

const defaultYield = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export class AccelDriver {
  /** pid → completion slots: page GVAs and the slots in use. */
  private readonly areas = new Map<number, { pages: number[]; busy: Set<number> }>();
  private readonly maxTries: number;
  private readonly maxPolls: number;
  private readonly pause: () => Promise<void>;

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
    try {
      await this.mm.write(pid, completion, Buffer.alloc(COMPLETION_RECORD_SIZE));
      // A process without a vPASID runs with IA32_PASID invalid: ENQCMD then raises #GP (SDM ENQCMD).
      const vpasid = this.sva.vpasidOf(pid);
      await this.port.wrmsr(vcpu, 'IA32_PASID', vpasid === null ? 0 : (IA32_PASID_VALID | vpasid) >>> 0);
      const descriptor: Descriptor = { ...req, completion };
      let accepted = false;
      for (let attempt = 0; attempt < this.maxTries && !accepted; attempt++) {
        if (attempt > 0) await this.pause();
        const r = await this.port.enqcmd(vcpu, vrid, descriptor);
        if (r.result === 'gp') {
          done = true;
          return { result: 'gp', reason: r.reason ?? 'general protection' };
        }
        accepted = r.result === 'accepted';
      }
      if (!accepted) {
        done = true;
        throw new KernelError('EAGAIN', `work queue of vrid 0x${vrid.toString(16)} stayed full for ${this.maxTries} tries`);
      }
      for (let poll = 0; poll < this.maxPolls; poll++) {
        const rec = decodeCompletion(await this.mm.read(pid, completion, COMPLETION_RECORD_SIZE));
        if (rec.status !== COMPLETION_STATUS_NONE) {
          done = true;
          const out: SubmitResult = { result: 'accepted', status: rec.status, bytes: rec.bytesCompleted };
          if (rec.faultAddress !== 0) out.faultAddress = rec.faultAddress;
          return out;
        }
        await this.pause();
      }
      throw new KernelError('EIO', `no completion from vrid 0x${vrid.toString(16)} after ${this.maxPolls} polls`);
    } finally {
      // A timed-out record may still be written by the device later: its slot is never reused.
      if (done) this.areas.get(pid)?.busy.delete(completion);
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
