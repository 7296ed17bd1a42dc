import { KernelError } from '@app/shared/errno';
import { COMPLETION_RECORD_SIZE, CompletionStatus, decodeDescriptor, encodeCompletion, type DsaOp } from '@app/shared/dsa/descriptor';
import { DESC_PRIV_BIT, DESCRIPTOR_SIZE } from '@app/shared/dsa/dsa.constants';
import { PASID_LIMIT } from '@app/shared/vtd/vtd.constants';
import { type Outcome, runDescriptor } from './dsa-ops';
import { ENGINE_BATCH_PER_TICK, WQ_DEFAULT_DEPTH, WQ_MAX_TRANSFER_SIZE } from './devices.constants';

/**
 * Every device memory access goes through this (the IOMMU, tagged with the requester's PASID or RID, and with
 * PR = the descriptor's priv bit: ENQCMD always clears it, ENQCMDS may set it).
 */
export interface DmaPort {
  access(
    ppasid: number | null,
    address: number,
    length: number,
    write: boolean,
    data?: Buffer,
    privileged?: boolean,
  ): { ok: true; data?: Buffer } | { ok: false; address: number; reason: string };
}

export type AcceleratorEvent =
  | { kind: 'completion'; ppasid: number | null; op: DsaOp | null; status: number; bytesCompleted: number; completionAddress: number | null }
  | { kind: 'fault'; ppasid: number | null; address: number; write: boolean; reason: string; stage: 'source' | 'destination' | 'completion-record' }
  /** A descriptor the device cannot report on (misaligned completion address): a software error (DSA SWERR). */
  | { kind: 'error'; ppasid: number | null; status: number; message: string };

export interface AcceleratorOptions {
  dma: DmaPort;
  wqDepth?: number;
  maxTransferSize?: number;
  batchPerTick?: number;
  /** Runs the engine later; default setImmediate. */
  scheduler?: (run: () => void) => void;
  onEvent?: (event: AcceleratorEvent) => void;
  /** Start paused (tests, "stalled device"). */
  paused?: boolean;
}

export interface AcceleratorStats {
  wqDepth: number;
  queued: number;
  inFlight: number;
  submitted: number;
  retried: number;
  completed: number;
  faulted: number;
  aborted: number;
  /** Descriptors rejected by validation (status 0x10+). */
  invalid: number;
}

interface Queued {
  ppasid: number | null;
  descriptor: Buffer;
  /** the descriptor's priv bit (PR of every request it makes); requests without PASID are never privileged */
  privileged: boolean;
}

/** Who a request comes from: the PASID it is tagged with (null: RID) and its PR bit. */
type Requester = Pick<Queued, 'ppasid' | 'privileged'>;

/** What reset() discarded, so a rolled-back transaction can put it back (unreset). */
export interface ResetState {
  readonly dropped: readonly Readonly<Queued>[];
  readonly paused: boolean;
  readonly aborted: number;
}


const defaultScheduler = (run: () => void): void => void setImmediate(run);

/**
 * A DSA-like device with one shared work queue. submit() is the ENQCMD portal write (ZF=1 'retry' when the
 * WQ is full); the engine executes descriptors in order, each synchronously, all memory through the DmaPort,
 * and writes the completion record by DMA. drainPasid() aborts a PASID's queued work before its route goes.
 */
export class Accelerator {
  readonly wqDepth: number;
  readonly maxTransferSize: number;
  private readonly queue: Queued[] = [];
  private readonly batchPerTick: number;
  private readonly schedule: (run: () => void) => void;
  private scheduled = false;
  private running = false;
  private isPaused: boolean;
  private counters = { submitted: 0, retried: 0, completed: 0, faulted: 0, aborted: 0, invalid: 0 };

  constructor(private readonly options: AcceleratorOptions) {
    this.wqDepth = options.wqDepth ?? WQ_DEFAULT_DEPTH;
    this.maxTransferSize = options.maxTransferSize ?? WQ_MAX_TRANSFER_SIZE;
    this.batchPerTick = options.batchPerTick ?? ENGINE_BATCH_PER_TICK;
    for (const [name, v] of [['wqDepth', this.wqDepth], ['maxTransferSize', this.maxTransferSize], ['batchPerTick', this.batchPerTick]] as const) {
      if (!Number.isSafeInteger(v) || v < 1) throw new KernelError('EINVAL', `accelerator ${name} ${v} must be a positive integer`);
    }
    this.schedule = options.scheduler ?? defaultScheduler;
    this.isPaused = options.paused ?? false;
  }

  /** ENQCMD/ENQCMDS to the portal: the PASID is the one the CPU put in the request, not the descriptor's field. */
  submit(ppasid: number | null, descriptor: Buffer): 'accepted' | 'retry' {
    checkPasid(ppasid);
    if (!Buffer.isBuffer(descriptor) || descriptor.length !== DESCRIPTOR_SIZE) {
      throw new KernelError('EINVAL', `descriptor must be ${DESCRIPTOR_SIZE} bytes`);
    }
    if (this.queue.length >= this.wqDepth) {
      this.counters.retried++;
      return 'retry';
    }
    const privileged = ppasid !== null && (descriptor.readUInt32LE(0) & DESC_PRIV_BIT) !== 0;
    this.queue.push({ ppasid, descriptor: Buffer.from(descriptor), privileged });
    this.counters.submitted++;
    this.kick();
    return 'accepted';
  }

  get paused(): boolean {
    return this.isPaused;
  }

  /** No free work-queue slot: a portal write now answers retry (ZF=1). */
  get full(): boolean {
    return this.queue.length >= this.wqDepth;
  }

  pause(): void {
    this.isPaused = true;
  }

  resume(): void {
    this.isPaused = false;
    this.kick();
  }

  /** Executes the oldest descriptor now, paused or not. Returns false when the queue was empty. */
  step(): boolean {
    const next = this.queue.shift();
    if (!next) return false;
    this.running = true;
    try {
      this.execute(next);
    } finally {
      this.running = false;
    }
    return true;
  }

  /**
   * Aborts every queued descriptor of ppasid (null = RID requests): each gets completion status 4 written by DMA
   * now, while the route still exists, and leaves the queue. Execution is synchronous, so when this returns no
   * DMA for that PASID remains pending. Returns how many were aborted.
   */
  drainPasid(ppasid: number | null): number {
    checkPasid(ppasid);
    return this.abortWhere((q) => q.ppasid === ppasid);
  }

  /** Aborts everything queued, writing each completion record (WQ disable / drain-all). */
  abortAll(): number {
    return this.abortWhere(() => true);
  }

  /**
   * Function-level reset (PCIe FLR, what VFIO's pci_try_reset_function does on device open and release): every
   * queued descriptor is discarded with no completion record and no event — an FLR drops work, it does not
   * report it — and the engine returns to its configured default (paused option). Counted as aborted. Nothing
   * is written anywhere, so unreset() can undo it exactly.
   */
  reset(): ResetState {
    const saved: ResetState = { dropped: this.queue.splice(0), paused: this.isPaused, aborted: this.counters.aborted };
    this.counters.aborted += saved.dropped.length;
    this.isPaused = this.options.paused ?? false;
    return saved;
  }

  /** Undo of reset() in a rolled-back transaction (nothing was submitted in between). */
  unreset(saved: ResetState): void {
    this.queue.unshift(...saved.dropped);
    this.isPaused = saved.paused;
    this.counters.aborted = saved.aborted;
    this.kick();
  }

  queuedFor(ppasid: number | null): number {
    return this.queue.filter((q) => q.ppasid === ppasid).length;
  }

  get stats(): AcceleratorStats {
    return { wqDepth: this.wqDepth, queued: this.queue.length, inFlight: this.running ? 1 : 0, ...this.counters };
  }

  private abortWhere(match: (q: Queued) => boolean): number {
    const victims = this.queue.filter(match);
    for (let i = this.queue.length - 1; i >= 0; i--) if (match(this.queue[i])) this.queue.splice(i, 1);
    for (const q of victims) {
      this.counters.aborted++;
      const decoded = decodeDescriptor(q.descriptor, this.maxTransferSize);
      const completion = decoded.ok ? decoded.descriptor.completion : decoded.completion;
      const op = decoded.ok ? decoded.descriptor.op : null;
      this.report(q, op, completion, { status: CompletionStatus.aborted, bytesCompleted: 0 }, true);
    }
    return victims.length;
  }

  private kick(): void {
    if (this.isPaused || this.scheduled || this.queue.length === 0) return;
    this.scheduled = true;
    this.schedule(() => this.tick());
  }

  private tick(): void {
    this.scheduled = false;
    for (let n = 0; n < this.batchPerTick && !this.isPaused && this.queue.length > 0; n++) this.step();
    this.kick();
  }

  private execute(q: Queued): void {
    const decoded = decodeDescriptor(q.descriptor, this.maxTransferSize);
    if (!decoded.ok) {
      this.counters.invalid++;
      if (decoded.completion === null) {
        this.emit({ kind: 'error', ppasid: q.ppasid, status: decoded.status, message: decoded.message });
        return;
      }
      this.report(q, null, decoded.completion, { status: decoded.status, bytesCompleted: 0 }, true);
      return;
    }
    const d = decoded.descriptor;
    const outcome = runDescriptor(d, (address, length, write, data, stage) => this.dma(q, address, length, write, data, stage));
    if (outcome.status === CompletionStatus.pageFault) this.counters.faulted++;
    else this.counters.completed++;
    const always = outcome.status !== CompletionStatus.success; // errors are recorded whenever CRAV is set
    this.report(q, d.op, d.completion, outcome, always || d.requestCompletion);
  }

  private dma(
    rq: Requester,
    address: number,
    length: number,
    write: boolean,
    data: Buffer | undefined,
    stage: 'source' | 'destination' | 'completion-record',
  ): { ok: true; data?: Buffer } | { ok: false; address: number } {
    const r = this.options.dma.access(rq.ppasid, address, length, write, data, rq.privileged);
    if (r.ok) return r;
    this.emit({ kind: 'fault', ppasid: rq.ppasid, address: r.address, write, reason: r.reason, stage });
    return r;
  }

  /** Writes the completion record (if wanted and possible), then tells onEvent. */
  private report(rq: Requester, op: DsaOp | null, completion: number | null, outcome: Outcome, write: boolean): void {
    if (completion !== null && write) {
      const record = encodeCompletion({ ...outcome });
      // A fault on the record itself has already been emitted as a 'fault' event; the record is dropped.
      this.dma(rq, completion, COMPLETION_RECORD_SIZE, true, record, 'completion-record');
    }
    this.emit({ kind: 'completion', ppasid: rq.ppasid, op, status: outcome.status, bytesCompleted: outcome.bytesCompleted, completionAddress: completion });
  }

  private emit(event: AcceleratorEvent): void {
    this.options.onEvent?.(event);
  }
}

function checkPasid(ppasid: number | null): void {
  if (ppasid !== null && (!Number.isInteger(ppasid) || ppasid < 1 || ppasid >= PASID_LIMIT)) {
    throw new KernelError('EINVAL', `PASID ${ppasid} is outside [1, 2^20)`);
  }
}
