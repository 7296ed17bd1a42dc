import { Buffer } from 'node:buffer'; // the module's binding: the global Buffer is a getter, a call on every submit
import { KernelError } from '@app/shared/errno';
import { DESC_PRIV_BIT, DESCRIPTOR_SIZE, DsaFlag } from '@app/shared/dsa/dsa.constants';
import { descriptorWords } from '@app/shared/dsa/descriptor-decode';
import { realTimers, type Timers } from '@app/shared/timers';
import { PASID_LIMIT } from '@app/shared/vtd/vtd.constants';
import { PageRequester } from './block-on-fault';
import { type AcceleratorEvent, DescriptorEngine, type DmaPort, type Queued } from './descriptor-engine';
import { ENGINE_BATCH_PER_TICK, ENGINES_PER_DEVICE, WQ_DEFAULT_DEPTH, WQ_MAX_TRANSFER_SIZE } from './devices.constants';

export type { AcceleratorEvent, DmaPort } from './descriptor-engine';

export interface AcceleratorOptions {
  dma: DmaPort;
  wqDepth?: number;
  maxTransferSize?: number;
  batchPerTick?: number;
  /** Runs the engine later; default setImmediate. */
  scheduler?: (run: () => void) => void;
  /** Where the page-request back-off waits (default real timers). */
  timers?: Timers;
  onEvent?: (event: AcceleratorEvent) => void;
  /** Whether anyone hears onEvent now (default: whenever onEvent is set); events are built only then. */
  listening?: () => boolean;
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
  /** Descriptors holding an engine while they wait on a page request (or its back-off). */
  blocked: number;
  /** Page request groups sent, and the answers they got. */
  pageRequests: number;
  pageResponses: { success: number; invalid: number };
}

/** What reset() discarded, so a rolled-back transaction can put it back (unreset). */
export interface ResetState {
  readonly dropped: readonly Queued[];
  readonly paused: boolean;
  readonly aborted: number;
}

const defaultScheduler = (run: () => void): void => void setImmediate(run);

/**
 * A DSA-like device with one shared work queue and ENGINES_PER_DEVICE engines. submit() is the ENQCMD portal
 * write (ZF=1 'retry' when the WQ is full). Descriptors run in queue order, each synchronously, all memory through
 * the DmaPort, and write their completion record by DMA. A block-on-fault descriptor whose pages do not all
 * translate sends a page request group and holds its slot and an engine until the answer: later descriptors run on
 * the other engines meanwhile (a fence waits), and with every engine held the queue waits. drainPasid() finishes or
 * aborts a PASID's work before its route goes.
 */
export class Accelerator {
  readonly wqDepth: number;
  readonly maxTransferSize: number;
  private readonly queue: Queued[] = [];
  private readonly batchPerTick: number;
  private readonly schedule: (run: () => void) => void;
  private readonly pri: PageRequester;
  private scheduled = false;
  private running = false;
  private isPaused: boolean;
  private readonly counters = { submitted: 0, retried: 0, completed: 0, faulted: 0, aborted: 0, invalid: 0 };
  /** Work-queue entries that finished, with their 64-byte slots, for the next submissions (no allocation per descriptor). */
  private readonly spare: Queued[] = [];
  private readonly engine: DescriptorEngine;

  constructor(private readonly options: AcceleratorOptions) {
    this.wqDepth = options.wqDepth ?? WQ_DEFAULT_DEPTH;
    this.maxTransferSize = options.maxTransferSize ?? WQ_MAX_TRANSFER_SIZE;
    this.batchPerTick = options.batchPerTick ?? ENGINE_BATCH_PER_TICK;
    for (const [name, v] of [['wqDepth', this.wqDepth], ['maxTransferSize', this.maxTransferSize], ['batchPerTick', this.batchPerTick]] as const) {
      if (!Number.isSafeInteger(v) || v < 1) throw new KernelError('EINVAL', `accelerator ${name} ${v} must be a positive integer`);
    }
    this.schedule = options.scheduler ?? defaultScheduler;
    this.pri = new PageRequester(options.dma, options.timers ?? realTimers, () => this.queue, () => this.kick());
    this.isPaused = options.paused ?? false;
    const listening = options.listening ?? (() => options.onEvent !== undefined);
    this.engine = new DescriptorEngine({ dma: options.dma, maxTransferSize: this.maxTransferSize, pri: this.pri, counters: this.counters, onEvent: options.onEvent, listening });
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
    const q = this.spare.pop() ?? newSlot(ppasid);
    q.descriptor.set(descriptor); // TypedArray#set: one native copy (Buffer#copy validates its four offsets first)
    q.ppasid = ppasid;
    // The priv bit is bit 31 of dword 0 (byte 3's top bit); fence is bit 0 of the flags (byte 4).
    q.privileged = ppasid !== null && (descriptor[3] & (DESC_PRIV_BIT >>> 24)) !== 0;
    q.fence = (descriptor[4] & DsaFlag.fence) !== 0;
    q.pri = null;
    this.queue.push(q);
    this.counters.submitted++;
    this.kick();
    return 'accepted';
  }

  get paused(): boolean {
    return this.isPaused;
  }

  /** No free work-queue slot (blocked descriptors hold theirs): a portal write now answers retry (ZF=1). */
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

  /** Runs the next runnable descriptor now, paused or not. Returns false when none can run. */
  step(): boolean {
    const next = this.nextRunnable();
    if (!next) return false;
    const nested = this.running; // a listener that steps the engine from inside a step: no shared scratch then
    this.running = true;
    try {
      if (this.engine.execute(next, nested)) {
        this.remove(next);
        // Nothing holds a finished entry any more (its page request state was released): its slot is reused.
        if (this.spare.length < this.wqDepth) this.spare.push(next);
      }
    } finally {
      this.running = nested;
    }
    return true;
  }

  /**
   * Finishes every descriptor of ppasid (null = RID requests) now, while the route still exists: one answered
   * invalid (its page requests were just answered by the drain) completes with status 2, every other one is
   * aborted with status 4. Execution is synchronous, so when this returns no DMA for that PASID remains pending.
   * Returns how many were aborted.
   */
  drainPasid(ppasid: number | null): number {
    checkPasid(ppasid);
    let aborted = 0;
    for (const q of this.queue.filter((x) => x.ppasid === ppasid)) {
      this.remove(q);
      if (q.pri && (q.pri.answer === 'invalid' || q.pri.waiting === 'answer')) this.engine.finishUnresolved(q, 'page request answered invalid by a teardown');
      else {
        this.engine.abort(q);
        aborted++;
      }
    }
    return aborted;
  }

  /** Aborts everything queued, writing each completion record (WQ disable / drain-all). */
  abortAll(): number {
    const all = this.queue.splice(0);
    for (const q of all) {
      this.pri.release(q);
      this.engine.abort(q);
    }
    return all.length;
  }

  /**
   * Function-level reset (PCIe FLR, what VFIO's pci_try_reset_function does on device open and release): every
   * queued descriptor, blocked ones included, is discarded with no completion record and no event — an FLR drops
   * work, it does not report it — and the engine returns to its configured default (paused option). The function
   * forgets its page request groups (a late response finds no one). Counted as aborted. Nothing is written
   * anywhere, so unreset() can undo it exactly.
   */
  reset(): ResetState {
    const saved: ResetState = { dropped: this.queue.splice(0), paused: this.isPaused, aborted: this.counters.aborted };
    for (const q of saved.dropped) this.pri.release(q);
    this.pri.clear();
    this.counters.aborted += saved.dropped.length;
    this.isPaused = this.options.paused ?? false;
    return saved;
  }

  /** Undo of reset() in a rolled-back transaction (nothing was submitted in between): blocked work runs again. */
  unreset(saved: ResetState): void {
    for (const q of saved.dropped) if (q.pri) q.pri = { ...q.pri, grpid: null, waiting: null, backoff: null };
    this.queue.unshift(...saved.dropped);
    this.isPaused = saved.paused;
    this.counters.aborted = saved.aborted;
    this.kick();
  }

  queuedFor(ppasid: number | null): number {
    return this.queue.filter((q) => q.ppasid === ppasid).length;
  }

  get stats(): AcceleratorStats {
    const blocked = this.queue.filter((q) => q.pri?.waiting).length;
    const { groups, success, invalid } = this.pri.counts;
    return { wqDepth: this.wqDepth, queued: this.queue.length, inFlight: this.running ? 1 : 0, ...this.counters, blocked, pageRequests: groups, pageResponses: { success, invalid } };
  }

  /** The oldest descriptor that can run: one between rounds keeps its engine; a new one needs a free engine. */
  private nextRunnable(): Queued | null {
    const queue = this.queue;
    // The common case: the head has never asked for pages, so nothing is held and it runs (a fence at the head has
    // nothing before it to wait for).
    if (queue.length > 0 && queue[0].pri === null && (queue.length === 1 || this.noneHeld())) return queue[0];
    let held = 0;
    for (const q of queue) if (q.pri?.waiting) held++;
    for (let i = 0; i < queue.length; i++) {
      const q = queue[i];
      if (q.pri?.waiting) continue;
      if (q.pri) return q;
      // A fence waits for every earlier descriptor; what comes after it waits behind it.
      if (q.fence && i > 0) return null;
      if (held >= ENGINES_PER_DEVICE) return null;
      return q;
    }
    return null;
  }

  /** No entry of the queue holds an engine while it waits on a page request. */
  private noneHeld(): boolean {
    for (const q of this.queue) if (q.pri?.waiting) return false;
    return true;
  }

  private kick(): void {
    if (this.isPaused || this.scheduled || !this.nextRunnable()) return;
    this.scheduled = true;
    this.schedule(() => this.tick());
  }

  private tick(): void {
    this.scheduled = false;
    for (let n = 0; n < this.batchPerTick && !this.isPaused && this.step(); n++);
    this.kick();
  }

  private remove(q: Queued): void {
    if (this.queue[0] === q) this.queue.shift();
    else {
      const i = this.queue.indexOf(q);
      if (i >= 0) this.queue.splice(i, 1);
    }
    this.pri.release(q);
  }
}

/** A work-queue entry with its own 64 bytes and their word view (the engine decodes dwords). */
function newSlot(ppasid: number | null): Queued {
  const descriptor = Buffer.alloc(DESCRIPTOR_SIZE);
  return { ppasid, descriptor, words: descriptorWords(descriptor), privileged: false, fence: false, pri: null };
}

function checkPasid(ppasid: number | null): void {
  if (ppasid !== null && (!Number.isInteger(ppasid) || ppasid < 1 || ppasid >= PASID_LIMIT)) {
    throw new KernelError('EINVAL', `PASID ${ppasid} is outside [1, 2^20)`);
  }
}
