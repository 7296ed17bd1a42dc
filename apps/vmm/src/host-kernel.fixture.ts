// The VMM's unit tests run on the real host kernel (DESIGN §8: no hand-written fake of another app): the
// HostKernelApp in this process, reached through InProcessHostKernel as the VMM reaches it over REST, its door
// wrapped by failWhen (every call logged in order; a chosen host refusal injected before it reaches the host).
// What a test says about the host it reads from the host itself: its state (kernelState) and its journal.
import { LamportClock } from '@app/shared/clock';
import type { Errno } from '@app/shared/errno';
import type { JournalEvent } from '@app/shared/journal/journal';
import { failWhen, type FailWhen } from '../../../stack/fail-when';
import { InProcessHostKernel } from '../../../stack/host-kernel.in-process';
import { openInProcessHost, type InProcessHost, type InProcessHostOptions } from '../../../stack/in-process-host';
import type { Op } from '../../host-kernel/src/dispatch/op';
import type { HostKernelApp } from '../../host-kernel/src/host-kernel.app';
import { kernelState, type KernelState } from '../../host-kernel/src/kernel-state';
import type { HostKernelPort } from './host-kernel.port';

export type Refusal = (method: string, args: unknown[]) => Errno | null;

/** Door calls that change nothing on the host (guest RAM access is the test's own writing, too). */
const NOT_MUTATING = new Set(['readGuestMemory', 'writeGuestMemory', 'listDevices']);

export class HostFixture {
  /** The VMM's door to the host: pass `door.port` to the VMM code under test. */
  readonly door: FailWhen<HostKernelPort>;
  /** The host's state at boot, before any call. */
  readonly initial: KernelState;
  private pick: Refusal | null = null;
  private readonly atExit = new Map<number, KernelState>();

  private constructor(private readonly booted: InProcessHost) {
    const vmmSide = { app: 'vmm', clock: new LamportClock() };
    this.door = failWhen<HostKernelPort>(new InProcessHostKernel(booted.host, vmmSide), (method, args) => {
      // Just before the VMM kills a process: what is it still holding that only its death would release?
      if (method === 'killProcess' && typeof args[0] === 'number') this.atExit.set(args[0], this.state());
      return this.pick?.(method, args) ?? null;
    });
    this.initial = this.state();
  }

  static async open(opts: InProcessHostOptions = {}): Promise<HostFixture> {
    return new HostFixture(await openInProcessHost(opts));
  }

  get host(): HostKernelApp {
    return this.booted.host;
  }

  get port(): HostKernelPort {
    return this.door.port;
  }

  /** Calls `pick` chooses fail at the door with its errno (null: let everything through). */
  failWhen(pick: Refusal | null): void {
    this.pick = pick;
  }

  /** The next call of `method` (whose args `match`) fails with `errno`; every later call goes through. */
  failOnce(method: string, errno: Errno, match: (args: unknown[]) => boolean = () => true): void {
    let armed = true;
    this.pick = (m, args) => {
      if (!armed || m !== method || !match(args)) return null;
      armed = false;
      return errno;
    };
  }

  state(): KernelState {
    return kernelState(this.host.kernel);
  }

  /** Methods of the door calls that would change host state, in order, since the last resetCalls(). */
  calls(): string[] {
    return this.door.calls.filter((c) => !NOT_MUTATING.has(c.method)).map((c) => c.method);
  }

  resetCalls(): void {
    this.door.calls.length = 0;
  }

  /** The host journal's last seq (rows after it are what happens next). */
  async mark(): Promise<number> {
    return (await this.rows()).at(-1)?.seq ?? 0;
  }

  /** Every host journal row after seq `since`, oldest first. */
  async rows(since = 0): Promise<JournalEvent[]> {
    const out: JournalEvent[] = [];
    for (let after = since; ; after = out[out.length - 1].seq) {
      const page = await this.host.journal.events({ afterSeq: after, limit: 10_000 });
      if (page.length === 0) return out;
      out.push(...page);
    }
  }

  /**
   * The calls the host journaled after `since`, in order: the operation, `!ERRNO` appended when it refused.
   * Events (child rows) and the test's own guest-RAM writes are left out.
   */
  async ops(since: number): Promise<string[]> {
    return (await this.calledRows(since)).map((r) => (r.errno ? `${r.operation}!${r.errno}` : r.operation));
  }

  /** The call rows behind ops(). */
  async calledRows(since: number): Promise<JournalEvent[]> {
    return (await this.rows(since)).filter((r) => !r.operation.startsWith('event.') && r.operation !== 'kvm.write_guest');
  }

  /** The host objects process `pid` holds, one line each: fds, ioasids, device routes, KVM entries, open devices. */
  heldBy(pid: number, s: KernelState = this.state()): string[] {
    const out: string[] = [];
    for (const f of s.processes.find((p) => p.pid === pid)?.fds ?? []) out.push(`fd ${f.fd} (${f.kind})`);
    const owned = s.ioasids.filter((i) => i.owner.pid === pid);
    for (const i of owned) out.push(`ioasid ${i.id} ${i.state} refs ${i.refs}`);
    for (const r of s.routes) if (owned.some((i) => i.id === r.ioasid)) out.push(`route ${r.bdf} pasid ${r.ppasid ?? 'rid'} → ioasid ${r.ioasid}`);
    for (const vm of s.vms.filter((v) => v.pid === pid)) {
      out.push(`kvm vm fd ${vm.fd}`);
      for (const m of vm.pasids) out.push(`kvm vpasid ${m.vpasid} → ${m.ppasid}`);
    }
    for (const d of s.devices) if (d.openedBy?.pid === pid) out.push(`device ${d.bdf} open`);
    for (const q of s.faultQueues.filter((x) => x.pid === pid)) out.push(`fault queue ${q.id} on fd ${q.fd}`);
    for (const g of s.pageRequests.filter((x) => x.owner === pid)) out.push(`page request group ${g.grpid} of ${g.bdf}`);
    return out;
  }

  /**
   * Everything the host still holds for process `pid`: the process itself if it still runs, what heldBy() lists,
   * and, host-wide, a PASID pool, pinned frames or allocated frames not back to their boot values. [] = nothing.
   */
  leftovers(pid: number | undefined): string[] {
    const s = this.state();
    const proc = s.processes.find((p) => p.pid === pid);
    const out = proc && proc.state !== 'exited' ? [`process ${proc.pid} ${proc.state}`] : [];
    if (pid !== undefined) out.push(...this.heldBy(pid, s));
    if (JSON.stringify(s.pool) !== JSON.stringify(this.initial.pool)) out.push(`pasid pool ${JSON.stringify(s.pool)}`);
    if (s.pins.length !== this.initial.pins.length) out.push(`${s.pins.length} pinned frames`);
    if (s.allocatedFrames !== this.initial.allocatedFrames) out.push(`${s.allocatedFrames} frames allocated`);
    return out;
  }

  /**
   * What process `pid` still held when the VMM killed it, beyond its memory (which goes with it by design):
   * [] when everything was released by explicit calls and none by process death. Undefined if never killed.
   */
  heldAtExit(pid: number): string[] | undefined {
    const s = this.atExit.get(pid);
    if (!s) return undefined;
    const out = this.heldBy(pid, s);
    if (s.pins.length !== this.initial.pins.length) out.push(`${s.pins.length} pinned frames`);
    return out;
  }

  /** A host process of its own (another tenant), acting through an unwrapped door. */
  async process(comm: string): Promise<{ pid: number; k: InProcessHostKernel }> {
    const anon = new InProcessHostKernel(this.host, { app: 'operator', clock: new LamportClock() });
    const p = await anon.createProcess(comm);
    return { pid: p.pid, k: anon.as(p.token) };
  }

  /** An admin-plane call (hardware view, raw device DMA) with the admin token. */
  admin<A, R>(op: Op<never, A, R, never, never>, args: A): Promise<R> {
    return this.host.dispatcher.exec(op, this.host.authorize(op, this.booted.adminToken), args);
  }

  close(): Promise<void> {
    return this.booted.close();
  }
}

const open: HostFixture[] = [];

/** A fresh host for one test; closeHosts() (in afterEach) shuts every one down. */
export async function openHost(opts: InProcessHostOptions = {}): Promise<HostFixture> {
  const h = await HostFixture.open(opts);
  open.push(h);
  return h;
}

export async function closeHosts(): Promise<void> {
  for (const h of open.splice(0)) await h.close();
}
