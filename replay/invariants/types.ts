// The invariants of DESIGN §11 as named checks. A check reads one observation of the stack — the state every
// app reports (kernel-state, the VMM's, each guest's), the host's admin views, the rows journaled since the
// last observation, and what the step that led here asked and was answered — and returns what it found
// wrong, as sentences. Checks that need the stack's own objects (the in-process stack) say so; the others run
// on both transports. Each group lives in its own module; index.ts lists them all.
import type { JournalEvent } from '@app/shared/journal/journal';
import type { HttpInput } from '@app/shared/replay/input';
import type { LimitsView } from '../../apps/host-kernel/src/hw/limits-view';
import type { KernelState } from '../../apps/host-kernel/src/kernel-state';
import type { PageRequestQueueView, PasidPool } from '@app/shared/contract/host-kernel';
import type { GuestAppStatus } from '../../apps/guest/src/guest.app';
import type { VmmState } from '../../apps/vmm/src/vmm-state';
import type { InProcessStack } from '../../stack/in-process-stack';
import type { StackResponse } from '../../stack/door/door';

/** The stack at one moment, as its apps and the host's admin views report it. */
export interface Snapshot {
  host: KernelState;
  /** GET /v1/hw/pasids, /v1/hw/limits, /v1/hw/iommu/page-requests (admin), read at the same moment. */
  views: { pasids: PasidPool; limits: LimitsView; pageRequests: PageRequestQueueView };
  /** null while the VMM is down (killed, not restarted). */
  vmm: VmmState | null;
  /** Each running guest's status, by VM id. */
  guests: Map<number, GuestAppStatus>;
  /** The size of the host PASID space (2^PASID width): free + allocated + parked + 1 (PASID 0, never handed out). */
  pasidSpace: number;
}

/**
 * One request the step made (as an input names it: app, vm, method, path, body, principal — the operator's
 * principals also include `garbage` and `<app>|<principal>`, another app's token), and its answer (null: none
 * came, e.g. sent in the background to an app that died).
 */
export type StepCall = Omit<HttpInput, 'kind'> & { response: StackResponse | null };

/** What led from the previous observation to this one. */
export interface StepRecord {
  /** What the step did, for messages ("call POST /v1/ioasid/3/ioasids as pid:103"). */
  label: string;
  calls: StepCall[];
  /** An external event (kill, restart, boot, advance): state may change without any call. */
  event: boolean;
}

export interface CheckInput {
  now: Snapshot;
  /** The previous observation (null for the first). */
  before: Snapshot | null;
  step: StepRecord | null;
  /** Rows each journal wrote since the previous observation. */
  rows: Map<string, JournalEvent[]>;
  /** What the journals said so far (journals.ts folds them). */
  fold: JournalFold;
  /** The in-process stack, when there is one: checks of its objects (frames, IOTLB) need it. */
  stack: InProcessStack | null;
}

/** The host journal folded up to now: what it says is allocated, and the problems found while folding. */
export interface JournalFold {
  /** PASIDs the host journal says are allocated or parked: successful ioasid.alloc minus event.ioasid-freed. */
  livePasids: Set<number>;
  /** Last seq and Lamport time seen per journal. */
  last: Map<string, { seq: number; logical: number }>;
  /** Found while folding the rows of this step (a PASID handed out twice, a row out of order, …). */
  problems: Array<{ check: string; message: string }>;
  /**
   * VMs whose RAM something other than their guest OS wrote (vmm.ts noteRamWrittenBehindOs), each with the guest's
   * `bootedAtMs` then: until the guest boots again, its OS's view of its own PASID tables is not what RAM holds.
   */
  ramWrittenBehindOs: Map<number, number | null>;
}

export interface Check {
  /** Stable name: what a violation, a scenario's expectation and the summary call it. */
  name: string;
  /** Its module (one file per group). */
  group: string;
  /** The sentence of DESIGN §11 (or the rule) it checks. */
  rule: string;
  /** Needs the stack's objects: runs only in process. */
  inProcessOnly?: boolean;
  run(input: CheckInput): string[];
}

export interface Violation {
  check: string;
  group: string;
  message: string;
}

export const check = (c: Check): Check => c;
