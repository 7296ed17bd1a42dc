// One engine's run of one work-queue entry: decode in place, move the bytes through the IOMMU, write the completion
// record, tell whoever listens. The work queue (ordering, fences, page-request waits, teardown) is accelerator.ts.
import { encodeCompletionScratch, newDescriptor } from '@app/shared/dsa/descriptor';
import { decodeDescriptor, decodeDescriptorInto, decodeDescriptorWordsInto, HOST_LITTLE_ENDIAN } from '@app/shared/dsa/descriptor-decode';
// Constants from their own module: descriptor.ts re-exports them, and a CommonJS re-export is a getter per use.
import { COMPLETION_RECORD_SIZE, CompletionStatus, type DsaOp } from '@app/shared/dsa/dsa.constants';
import type { PageRequest, PageResponseCode } from '../ioasid/pgtbl';
import type { PageRequester, PriWork } from './block-on-fault';
import { type AccessStage, type DeviceDma, type FrameMemory, type Outcome, runDescriptor, unresolvedFault } from './dsa-ops';
import { PRI_MAX_ROUNDS } from './devices.constants';

/**
 * Every device memory access goes through this (the IOMMU, tagged with the requester's PASID or RID, and with
 * PR = the descriptor's priv bit: ENQCMD always clears it, ENQCMDS may set it).
 */
export interface DmaPort {
  /**
   * One access of `length` bytes inside one page: its hpa, or a negative fault code (`faultReason` names it) once
   * the IOMMU has logged and reported the fault.
   */
  translate(ppasid: number | null, address: number, length: number, write: boolean, privileged: boolean): number;
  faultReason(code: number): string;
  /** Where the bytes move, at translated addresses. */
  readonly memory: FrameMemory;
  /** A translation request (ATS) for one page: no byte moves, no fault is logged. */
  probe(ppasid: number | null, address: number, write: boolean, privileged: boolean): { ok: true } | { ok: false; recoverable: boolean };
  /** A page request group (PRI); `respond` is how its Page Request Group Response reaches the device, now or later. */
  pageRequest(ppasid: number | null, grpid: number, requests: PageRequest[], respond: (code: PageResponseCode) => void): void;
}

export type AcceleratorEvent =
  | { kind: 'completion'; ppasid: number | null; op: DsaOp | null; status: number; bytesCompleted: number; completionAddress: number | null }
  | { kind: 'fault'; ppasid: number | null; address: number; write: boolean; reason: string; stage: AccessStage }
  /** A descriptor the device cannot report on (misaligned completion address): a software error (DSA SWERR). */
  | { kind: 'error'; ppasid: number | null; status: number; message: string };

export interface Queued extends PriWork {
  ppasid: number | null;
  /** The 64 bytes the portal write delivered (the device's own copy). */
  readonly descriptor: Buffer;
  /** The same bytes as sixteen u32 words (what the engine decodes on a little-endian host). */
  readonly words: Uint32Array;
  /** the descriptor's priv bit (PR of every request it makes); requests without PASID are never privileged */
  privileged: boolean;
  /** Fence: runs only once every earlier descriptor of the queue has completed. */
  fence: boolean;
}

/** Who a request comes from: the PASID it is tagged with (null: RID) and its PR bit. */
type Requester = Pick<Queued, 'ppasid' | 'privileged'>;

export interface EngineCounters {
  completed: number;
  faulted: number;
  aborted: number;
  invalid: number;
}

export interface EngineOptions {
  dma: DmaPort;
  maxTransferSize: number;
  pri: PageRequester;
  counters: EngineCounters;
  onEvent?: (event: AcceleratorEvent) => void;
  /** Whether anyone hears onEvent now; events are built only then. */
  listening: () => boolean;
}

/**
 * Runs descriptors with scratch it keeps (the decoded descriptor and its outcome; the record is encoded in the
 * encoders' own): nothing is allocated per descriptor. A run nested inside another (a listener stepping the device)
 * takes fresh scratch.
 */
export class DescriptorEngine {
  private readonly decoded = newDescriptor();
  private readonly outcome: Outcome = { status: 0, bytesCompleted: 0 };
  /** The requester of the running descriptor, and the memory port its accesses go through. */
  private requester: Requester = { ppasid: null, privileged: false };
  private readonly port: DeviceDma;

  constructor(private readonly o: EngineOptions) {
    this.port = { translate: (address, length, write, stage) => this.translate(this.requester, address, length, write, stage), memory: o.dma.memory };
  }

  /** Runs a descriptor; true when it is done (its record written), false when it waits on a page request. */
  execute(q: Queued, nested: boolean): boolean {
    const d = nested ? newDescriptor() : this.decoded;
    const invalid = HOST_LITTLE_ENDIAN ? decodeDescriptorWordsInto(q.words, this.o.maxTransferSize, d) : decodeDescriptorInto(q.descriptor, this.o.maxTransferSize, d);
    if (invalid) {
      this.o.counters.invalid++;
      if (invalid.completion === null) {
        if (this.o.listening()) this.emit({ kind: 'error', ppasid: q.ppasid, status: invalid.status, message: invalid.message });
        return true;
      }
      this.report(q, null, invalid.completion, { status: invalid.status, bytesCompleted: 0 }, true);
      return true;
    }
    if (d.blockOnFault) {
      const now = this.o.pri.prepare(q, d);
      if (now === 'wait') return false;
      if (now === 'fail') {
        const why = q.pri?.answer === 'invalid' ? 'page request answered invalid' : `page still faulting after ${PRI_MAX_ROUNDS} page request rounds`;
        this.finishUnresolved(q, why);
        return true;
      }
    }
    const outer = this.requester;
    this.requester = q;
    let outcome: Outcome;
    try {
      outcome = runDescriptor(d, this.port, nested ? { status: 0, bytesCompleted: 0 } : this.outcome);
    } finally {
      this.requester = outer;
    }
    if (outcome.status === CompletionStatus.pageFault) this.o.counters.faulted++;
    else this.o.counters.completed++;
    const always = outcome.status !== CompletionStatus.success; // errors are recorded whenever CRAV is set
    this.report(q, d.op, d.completion, outcome, always || d.requestCompletion);
    return true;
  }

  /** Status 2 at the first page it could not get: nothing was moved. */
  finishUnresolved(q: Queued, reason: string): void {
    const decoded = decodeDescriptor(q.descriptor, this.o.maxTransferSize);
    const first = q.pri?.first;
    if (!decoded.ok || !first) {
      this.abort(q);
      return;
    }
    this.o.counters.faulted++;
    if (this.o.listening()) this.emit({ kind: 'fault', ppasid: q.ppasid, address: first.address, write: first.write, reason, stage: first.stage });
    this.report(q, decoded.descriptor.op, decoded.descriptor.completion, unresolvedFault(decoded.descriptor, first), true);
  }

  abort(q: Queued): void {
    this.o.counters.aborted++;
    const decoded = decodeDescriptor(q.descriptor, this.o.maxTransferSize);
    const completion = decoded.ok ? decoded.descriptor.completion : decoded.completion;
    const op = decoded.ok ? decoded.descriptor.op : null;
    this.report(q, op, completion, { status: CompletionStatus.aborted, bytesCompleted: 0 }, true);
  }

  /** One access of the requester through the IOMMU: its hpa, or -1 (the fault reported, and told to onEvent). */
  private translate(rq: Requester, address: number, length: number, write: boolean, stage: AccessStage): number {
    const hpa = this.o.dma.translate(rq.ppasid, address, length, write, rq.privileged);
    if (hpa >= 0) return hpa;
    if (this.o.listening()) this.emit({ kind: 'fault', ppasid: rq.ppasid, address, write, reason: this.o.dma.faultReason(hpa), stage });
    return -1;
  }

  /** Writes the completion record (if wanted and possible), then tells onEvent. */
  private report(rq: Requester, op: DsaOp | null, completion: number | null, outcome: Outcome, write: boolean): void {
    if (completion !== null && write) {
      // A fault on the record itself has already been emitted as a 'fault' event; the record is dropped.
      const hpa = this.translate(rq, completion, COMPLETION_RECORD_SIZE, true, 'completion-record');
      // Encoded after the translation (the last call out) and copied into the frame at once: the scratch it is
      // encoded in is the encoders' own (an invalid field still throws, as encodeCompletion does).
      const record = encodeCompletionScratch(outcome.status, outcome.result ?? 0, outcome.faultInfo ?? 0, outcome.bytesCompleted, outcome.faultAddress ?? 0);
      if (hpa >= 0) this.o.dma.memory.writeFrom(hpa, record, 0, COMPLETION_RECORD_SIZE);
    }
    if (this.o.listening()) {
      this.emit({ kind: 'completion', ppasid: rq.ppasid, op, status: outcome.status, bytesCompleted: outcome.bytesCompleted, completionAddress: completion });
    }
  }

  private emit(event: AcceleratorEvent): void {
    this.o.onEvent?.(event);
  }
}
