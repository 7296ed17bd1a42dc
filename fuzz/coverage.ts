// What a run reached: every operation of the journal contract (libs/shared/src/contract/operations.ts) by app, with
// the errnos its rows (or, for the host's reads, which journal nothing, its answers) carried; and the fuzzer's own
// repertoire by name. The summary prints it as a table against the contract; the test derives its floor from it.
import { GUEST_OPERATIONS, HOST_OPERATIONS, VMM_OPERATIONS } from '@app/shared/contract/operations';
import type { JournalEvent } from '@app/shared/journal/journal';
import type { StepCall } from '../replay/invariants/types';

export const CONTRACT: Record<'host-kernel' | 'vmm' | 'guest', readonly string[]> = {
  'host-kernel': Object.keys(HOST_OPERATIONS),
  vmm: Object.keys(VMM_OPERATIONS),
  guest: Object.keys(GUEST_OPERATIONS),
};

/** The host's read routes (their ops journal nothing), by method and path: how an answer names its operation. */
const HOST_READS: Array<[string, RegExp, string]> = [
  ['GET', /^\/v1\/processes\/[^/]+$/, 'process.get'],
  ['GET', /^\/v1\/processes\/[^/]+\/memory$/, 'mm.read'],
  ['GET', /^\/v1\/ioasid\/[^/]+\/ioasids$/, 'ioasid.list'],
  ['GET', /^\/v1\/ioasid\/[^/]+\/ioasids\/[^/]+$/, 'ioasid.info'],
  ['GET', /^\/v1\/vfio\/devices$/, 'vfio.list_devices'],
  ['GET', /^\/v1\/kvm\/[^/]+\/memory$/, 'kvm.read_guest'],
  ['GET', /^\/v1\/hw\/pasids$/, 'hw.pasids'],
  ['GET', /^\/v1\/hw\/limits$/, 'hw.limits'],
  ['GET', /^\/v1\/hw\/iommu\/faults$/, 'hw.faults'],
  ['GET', /^\/v1\/hw\/iommu\/page-requests$/, 'hw.page_requests'],
];

type Outcomes = Map<string, number>;

export class Coverage {
  /** `app` → operation → outcome (`ok` or an errno) → count. */
  readonly contract = new Map<string, Map<string, Outcomes>>();
  /** The fuzzer's operations by name → outcome of their last step → count. */
  readonly repertoire = new Map<string, Outcomes>();

  private bump(m: Map<string, Outcomes>, key: string, outcome: string, n = 1): void {
    const o = m.get(key) ?? new Map<string, number>();
    o.set(outcome, (o.get(outcome) ?? 0) + n);
    m.set(key, o);
  }

  /** Journal rows of any app (`guest-<vm>` journals count as the guest's). */
  rows(rows: Map<string, JournalEvent[]>): void {
    for (const [journal, list] of rows) {
      const app = journal.startsWith('guest') ? 'guest' : journal;
      const ops = this.contract.get(app) ?? new Map<string, Outcomes>();
      this.contract.set(app, ops);
      for (const r of list) this.bump(ops, r.operation, r.errno ?? 'ok');
    }
  }

  /** Answers of the host's read routes, which journal nothing. */
  calls(calls: StepCall[]): void {
    for (const c of calls) {
      if (c.app !== 'host-kernel' || !c.response || c.response.status === 0) continue;
      const path = c.path.split('?')[0];
      const read = HOST_READS.find(([m, re]) => m === c.method && re.test(path));
      if (!read) continue;
      const ops = this.contract.get('host-kernel') ?? new Map<string, Outcomes>();
      this.contract.set('host-kernel', ops);
      const errno = (c.response.body as { errno?: string } | null)?.errno;
      this.bump(ops, read[2], c.response.status < 300 ? 'ok' : (errno ?? String(c.response.status)));
    }
  }

  op(name: string, outcome: string): void {
    this.bump(this.repertoire, name, outcome);
  }

  /** The contract's operations of `app` this run reached (any outcome), and those it reached with success. */
  reached(app: keyof typeof CONTRACT): { any: string[]; ok: string[]; errnos: Set<string> } {
    const ops = this.contract.get(app) ?? new Map<string, Outcomes>();
    const any = CONTRACT[app].filter((o) => ops.has(o));
    const ok = CONTRACT[app].filter((o) => (ops.get(o)?.get('ok') ?? 0) > 0);
    const errnos = new Set([...ops.values()].flatMap((o) => [...o.keys()].filter((k) => k !== 'ok')));
    return { any, ok, errnos };
  }

  /** Adds another run's counts to these (a campaign reports what all its runs reached; a worker's come as plain maps). */
  merge(other: Pick<Coverage, 'contract' | 'repertoire'>): void {
    for (const [app, ops] of other.contract) {
      const mine = this.contract.get(app) ?? new Map<string, Outcomes>();
      this.contract.set(app, mine);
      for (const [operation, outcomes] of ops) for (const [outcome, n] of outcomes) this.bump(mine, operation, outcome, n);
    }
    for (const [name, outcomes] of other.repertoire) for (const [outcome, n] of outcomes) this.bump(this.repertoire, name, outcome, n);
  }

  outcomes(app: string, operation: string): Outcomes {
    return this.contract.get(app)?.get(operation) ?? new Map();
  }
}
