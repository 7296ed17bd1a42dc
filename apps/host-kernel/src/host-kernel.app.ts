// One running host kernel, whichever door it is reached by (DESIGN §8): the kernel, its command-table
// dispatcher over the journal, the process table it persists, the lifelines of its processes, and who a bearer
// token names. The Nest app (REST) and the in-process stack both wrap exactly this.
import { authenticateBearer, sameToken } from '@app/shared/auth/bearer';
import { seededTokens } from '@app/shared/replay/seeded';
import { KernelError } from '@app/shared/errno';
import { HOST_SHUTDOWN_REASON } from '@app/shared/contract/host-kernel';
import type { Journal, StateWrite } from '@app/shared/journal/journal';
import type { EventSink } from '@app/shared/lifeline/event-sink';
import { currentTrace, formatTraceparent, newSpanId, newTraceId, runInTrace } from '@app/shared/trace';
import { realTimers, type Timers } from '@app/shared/timers';
import { Dispatcher } from './dispatch/dispatcher';
import { authKindOf, type HostCaller, type Permit } from './dispatch/op';
import type { TxEvent } from './fault-injection';
import { Kernel, type KernelOptions } from './kernel';
import { ProcessEntity, type ProcessRow } from './persistence/process.entity';
import { type ProcessInfo, processOps } from './process/process.ops';

/** Pids below this look like system processes (init is 1); ours start here and are never reused. */
const FIRST_PID = 100;

export interface HostKernelAppOptions extends Omit<KernelOptions, 'firstPid' | 'onEvent'> {
  adminToken: string;
  journal: Journal;
  onError?: (message: string) => void;
  /** Deterministic mode (DESIGN §9): process tokens come from this boot's stream of the seed. */
  seed?: number | null;
}

export class HostKernelApp {
  private readonly lifelines = new Map<number, EventSink>();

  private constructor(
    readonly kernel: Kernel,
    readonly dispatcher: Dispatcher<Kernel>,
    readonly journal: Journal,
    private readonly adminToken: string,
    private readonly onError: (message: string) => void,
    /** The kernel's waits (a page-request timeout): logical time in deterministic mode. */
    readonly timers: Timers,
  ) {}

  /**
   * Boots: a kernel restart is a reboot (DESIGN §6), so no process survives it; the ones the last boot left
   * running are marked exited, and pids continue past every pid the table has seen.
   */
  static async open(opts: HostKernelAppOptions): Promise<HostKernelApp> {
    const { journal, adminToken, seed, timers, ...kernelOpts } = opts;
    const onError = opts.onError ?? (() => undefined);
    const rows = await journal.store.find<ProcessRow>(ProcessEntity);
    const maxPid = rows.reduce((m, r) => Math.max(m, r.pid), 0);
    const survivors = rows.filter((r) => r.state === 'running').map((r) => r.pid);
    const firstPid = Math.max(FIRST_PID, maxPid + 1);
    await runInTrace({ traceId: newTraceId(), spanId: null, caller: null }, () =>
      journal.run(
        { operation: 'kernel.boot', actor: 'kernel', args: { memoryMiB: opts.memoryMiB, devices: opts.devices.length } },
        () => ({ firstPid, exitedAtBoot: survivors }),
        (): StateWrite[] =>
          survivors.length ? [{ entity: ProcessEntity, update: { state: 'exited', exitedMs: Date.now(), exitReason: 'host-kernel restart' }, where: { state: 'running' } }] : [],
      ),
    );
    const newToken = kernelOpts.newToken ?? seededTokens(seed ?? null, `host-kernel/process-token/boot-${journal.bootSeq}`, 24, 'base64url');
    const kernel = new Kernel({ ...kernelOpts, firstPid, newToken, timers: timers ?? realTimers });
    let app: HostKernelApp | null = null;
    const dispatcher = new Dispatcher(kernel, journal, {
      deliver: (events) => app?.deliver(events),
      eventWrites: (e) => exitWrites(e),
      onError: (err) => onError(`journal: ${String(err)}`),
    });
    kernel.onEvent = (e) => dispatcher.onKernelEvent(e);
    app = new HostKernelApp(kernel, dispatcher, journal, adminToken, onError, timers ?? realTimers);
    return app;
  }

  /**
   * The REST guard's rule for a route issuing `row`, applied to a token (and the `:pid` the route names, if any):
   * the caller, or the refusal — before the dispatcher, so a refused token journals nothing, whichever door.
   */
  authorize(row: { permit: Permit }, token: string | null, pid?: number): HostCaller {
    const p = authenticateBearer(authKindOf(row.permit), token, { isAdminToken: (t) => this.isAdminToken(t), callerForToken: (t) => this.kernel.procs.pidForToken(t) }, { param: 'pid', value: pid });
    return p.isAdmin ? { kind: 'admin' } : p.callerId !== undefined ? { kind: 'process', pid: p.callerId } : { kind: 'anyone' };
  }

  /** Whose a bearer token is, as an input row records it (DESIGN §9): `admin`, `pid:<n>`, or `none`. */
  principalOf(token: string | null): string {
    if (token === null) return 'none';
    if (this.isAdminToken(token)) return 'admin';
    const pid = this.kernel.procs.pidForToken(token);
    return pid === undefined ? 'none' : `pid:${pid}`;
  }

  isAdminToken(token: string): boolean {
    return sameToken(token, this.adminToken);
  }

  /** A process the kernel knows, or (after a reboot) the record the database kept of it. */
  async describeProcess(caller: HostCaller, pid: number): Promise<ProcessInfo & { exitReason?: string | null }> {
    try {
      return await this.dispatcher.exec(processOps.get, caller, { pid });
    } catch (err) {
      if (!(err instanceof KernelError) || err.errno !== 'ESRCH') throw err;
      const [row] = await this.journal.store.find<ProcessRow>(ProcessEntity, { pid });
      if (!row) throw err;
      return { pid: row.pid, comm: row.comm, state: row.state, fds: [], exitReason: row.exitReason };
    }
  }

  // ---- lifelines (DESIGN §1: the holder's drop is the process's death) --------------------------------

  attachLifeline(caller: HostCaller, pid: number, sink: EventSink): void {
    if (caller.kind !== 'process' || caller.pid !== pid) throw new KernelError('EPERM', `only process ${pid} holds its own lifeline`);
    if (this.kernel.procs.get(pid).state !== 'running') throw new KernelError('ESRCH', `process ${pid} has exited`);
    if (this.lifelines.has(pid)) throw new KernelError('EBUSY', `process ${pid} already holds its lifeline`);
    this.lifelines.set(pid, sink);
  }

  /** The stream dropped: if it was still the process's lifeline, the process is dead. */
  async lifelineDropped(pid: number, sink: EventSink): Promise<void> {
    if (this.lifelines.get(pid) !== sink) return;
    this.lifelines.delete(pid);
    await runInTrace({ traceId: newTraceId(), spanId: null, caller: null }, () =>
      this.dispatcher.exec(processOps.exit, { kind: 'process', pid }, { pid, reason: 'lifeline dropped' }),
    ).catch((err: unknown) => this.onError(`lifeline of ${pid}: ${String(err)}`));
  }

  /**
   * A clean shutdown kills every process first (as init does at halt), each journaled with its fds closed
   * leaf-first; their lifelines end with an exit event. A crash leaves that to the next boot.
   */
  async shutdown(): Promise<void> {
    for (const p of this.kernel.procs.all()) {
      if (p.state !== 'running') continue;
      await runInTrace({ traceId: newTraceId(), spanId: null, caller: null }, () =>
        this.dispatcher.exec(processOps.exit, { kind: 'kernel' }, { pid: p.pid, reason: HOST_SHUTDOWN_REASON }),
      ).catch((err: unknown) => this.onError(`shutdown: process ${p.pid}: ${String(err)}`));
    }
    for (const sink of this.lifelines.values()) sink.end();
    this.lifelines.clear();
  }

  /** Pushes events to the lifeline of the process they concern; a process exit ends its lifeline. */
  private deliver(events: TxEvent[]): void {
    for (const e of events) {
      if (typeof e.pid !== 'number') continue;
      const sink = this.lifelines.get(e.pid);
      if (!sink) continue;
      if (e.kind === 'process-exit') {
        this.lifelines.delete(e.pid);
        sink.send('exit', e);
        sink.end();
      } else {
        sink.send(e.kind, withTraceparent(e));
      }
    }
  }
}

/**
 * What a lifeline carries of an event: the event, and the trace it happened in (W3C traceparent), so the holder
 * handles it in the same trace over either door (a page request's round trip is one trace, one diagram).
 */
function withTraceparent(e: TxEvent): TxEvent {
  const t = currentTrace();
  return t ? { ...e, traceparent: formatTraceparent(t.traceId, t.spanId ?? newSpanId()) } : e;
}

/** A process exit updates its row in the process table, in the same transaction as the exit's row. */
function exitWrites(e: TxEvent): StateWrite[] {
  if (e.kind !== 'process-exit' || typeof e.pid !== 'number') return [];
  return [{ entity: ProcessEntity, update: { state: 'exited', exitedMs: Date.now(), exitReason: String(e.reason ?? '') }, where: { pid: e.pid } }];
}
