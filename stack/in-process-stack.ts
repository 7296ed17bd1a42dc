// The whole stack in one process, from the real code (DESIGN §8): a host kernel, a VMM and any number of guest
// OSes, each with its own journal (in-memory SQLite) and Lamport clock, wired through the in-process adapters
// of HostKernelPort and VmmPort. Unit tests, benchmarks, the fuzzer and replay compose it; what differs from
// the three spawned apps is only the transport. The operator's door (`request`) takes REST-shaped requests and
// marks them as inputs as the REST middleware does; external events (kill, restart, advance) go through
// stack-events.ts and are recorded in the operator's own journal.
import { randomBytes } from 'node:crypto';
import { adminTokenStream } from '@app/shared/config';
import { SeededStream } from '@app/shared/replay/seeded';
import { KernelError } from '@app/shared/errno';
import type { Journal, JournalEvent } from '@app/shared/journal/journal';
import { allJournalEvents } from '@app/shared/journal/journal-pages';
import { newTraceId, parseTraceparent, runInTrace, useSeededIds } from '@app/shared/trace';
import type { Timers } from '@app/shared/timers';
import type { DataSource } from 'typeorm';
import { GuestApp } from '../apps/guest/src/guest.app';
import type { AccelOptions } from '../apps/guest/src/drivers/accel-driver';
import type { VmmPort } from '../apps/guest/src/vmm.port';
import type { EngineOptions } from '../apps/host-kernel/src/devices/device-set';
import type { FaultInjector } from '../apps/host-kernel/src/fault-injection';
import type { HostKernelApp } from '../apps/host-kernel/src/host-kernel.app';
import type { DeviceConfig } from '../apps/host-kernel/src/kernel';
import type { Limits } from '../apps/host-kernel/src/limits/limits';
import type { HostKernelPort } from '../apps/vmm/src/host-kernel.port';
import { withStall } from '../apps/vmm/src/vm/debug-stall';
import { VM_MIGRATIONS, VmEntity } from '../apps/vmm/src/persistence/vm.entity';
import { VmmApp } from '../apps/vmm/src/vmm.app';
import { cross, type Side } from './crossing';
import { markOf, ROUTES, serve, type StackRequest, type StackResponse } from './door/door';
import { InProcessHostKernel } from './host-kernel.in-process';
import { openInProcessHost, openJournal } from './in-process-host';
import { InProcessVmm } from './vmm.in-process';

export { STACK_DEVICES } from './in-process-host';
export type { StackRequest, StackResponse } from './door/door';

export interface InProcessStackOptions {
  devices?: DeviceConfig[];
  memoryMiB?: number;
  pasidQuota?: number;
  engine?: EngineOptions;
  faults?: FaultInjector;
  /** The host's waits (page request timeouts, device back-off); real timers by default. */
  timers?: Timers;
  /** Host page request queue depth and PRQ_TIMEOUT_MS. */
  prqDepth?: number;
  prqTimeoutMs?: number;
  /** The guest page request queue depth of every VM (requests). */
  guestPrqDepth?: number;
  /** How every guest's vIOMMU driver treats page requests (default: handles them). */
  guestPageRequests?: 'handle' | 'ignore';
  /** The host kernel's resource limits (PASID_LIMIT & co.; defaults otherwise). */
  limits?: Partial<Limits>;
  /** Wraps the VMM's door to the host kernel (fault injection: fail chosen calls before they reach it). */
  wrapHost?: (port: HostKernelPort) => HostKernelPort;
  accel?: AccelOptions;
  /** Deterministic mode (DESIGN §9): tokens, admin tokens and trace ids from the seed, waits on logical time. */
  seed?: number;
  /** The VMM's DEBUG_STALL_BEFORE crash-test knob: every such host call hangs forever. */
  debugStallBefore?: string | null;
}

export interface VmHandle {
  id: number;
  token: string;
}

interface Db {
  ds: DataSource;
  journal: Journal;
}

export class InProcessStack {
  readonly guests = new Map<number, GuestApp>();
  /** Every guest's journal by VM id, kept across its reboots (a guest app's data dir). */
  readonly guestDbs = new Map<number, Db>();
  /** The operator's side of every call it makes (its own clock, as a REST client has; its journal records external events). */
  readonly operator: Side;
  /** Apps killed and not restarted: a request to one is refused as a connection to a dead process would be. */
  readonly down = new Set<string>();
  private readonly dataSources: DataSource[] = [];

  private constructor(
    readonly host: HostKernelApp,
    public vmm: VmmApp,
    readonly vmmDb: Db,
    readonly operatorJournal: Journal,
    readonly hostAdminToken: string,
    readonly vmmAdminToken: string,
    readonly opts: InProcessStackOptions,
  ) {
    this.operator = { app: 'operator', clock: operatorJournal.clock };
  }

  static async create(opts: InProcessStackOptions = {}): Promise<InProcessStack> {
    if (opts.seed !== undefined) useSeededIds(new SeededStream(opts.seed, 'in-process/ids'));
    const { host, adminToken: hostAdminToken, ds: hostDs } = await openInProcessHost(opts);
    const vmmDb = await openJournal('vmm', [VmEntity], VM_MIGRATIONS);
    const operatorDb = await openJournal('operator');
    const vmmAdminToken = adminTokenStream(opts.seed ?? null, 'vmm')?.hex(16) ?? randomBytes(16).toString('hex');
    const vmm = await InProcessStack.openVmm(host, vmmDb.journal, vmmAdminToken, opts);
    const stack = new InProcessStack(host, vmm, vmmDb, operatorDb.journal, hostAdminToken, vmmAdminToken, opts);
    stack.dataSources.push(hostDs, vmmDb.ds, operatorDb.ds);
    return stack;
  }

  /** A VMM over `journal` (a fresh one, or a restart's over the same database), its host door as configured. */
  static openVmm(host: HostKernelApp, journal: Journal, adminToken: string, opts: InProcessStackOptions): Promise<VmmApp> {
    const port = withStall(new InProcessHostKernel(host, { app: 'vmm', clock: journal.clock }), opts.debugStallBefore ?? null);
    return VmmApp.open({ journal, host: opts.wrapHost ? opts.wrapHost(port) : port, adminToken, pasidQuota: opts.pasidQuota ?? 64, guestPrqDepth: opts.guestPrqDepth, seed: opts.seed ?? null });
  }

  /** Runs `fn` as an operator request: the trace it carries (or a fresh one), then the callee's side of the call. */
  private asOperator<T>(to: Side, fn: () => Promise<T> | T, traceparent?: string | null, input?: ReturnType<typeof markOf>): Promise<T> {
    const tp = parseTraceparent(traceparent ?? null);
    return runInTrace({ traceId: tp?.traceId ?? newTraceId(), spanId: tp?.parentId ?? null, caller: null }, () => cross(this.operator, to, fn, input));
  }

  private get vmmSide(): Side {
    return { app: 'vmm', clock: this.vmm.journal.clock };
  }

  /** The operator's door: a REST-shaped request to one app, answered as REST would, marked as an input. */
  request(req: StackRequest): Promise<StackResponse> {
    if (this.down.has(req.app)) return Promise.resolve({ status: 502, body: { errno: 'EIO', code: 5, message: `${req.app} is not running` } });
    if (req.app === 'host-kernel') {
      const input = markOf(req, this.host.principalOf(req.token ?? null));
      return this.asOperator({ app: 'host-kernel', clock: this.host.journal.clock }, () => serve(ROUTES['host-kernel'], this.host, req), req.traceparent, input);
    }
    if (req.app === 'vmm') {
      const input = markOf(req, this.vmm.principalOf(req.token ?? null));
      return this.asOperator(this.vmmSide, () => serve(ROUTES.vmm, this.vmm, req), req.traceparent, input);
    }
    const guest = req.vm === undefined ? undefined : this.guests.get(req.vm);
    if (!guest) return Promise.resolve({ status: 502, body: { errno: 'EIO', code: 5, message: `no guest running on vm ${String(req.vm)}` } });
    return this.asOperator({ app: 'guest', clock: guest.journal.clock }, () => serve(ROUTES.guest, guest, req), req.traceparent, markOf(req, 'none'));
  }

  /** `request`, and the body of a 2xx answer; a KernelError otherwise. */
  async call<T>(req: StackRequest): Promise<T> {
    const res = await this.request(req);
    if (res.status >= 300) {
      const p = res.body as { errno: 'EIO'; message: string };
      throw new KernelError(p.errno, p.message, res.status);
    }
    return res.body as T;
  }

  /** POST /v1/vms with the VMM admin token. */
  createVm(spec: { name: string; memoryMiB?: number; vcpus?: number; devices?: string[] }): Promise<VmHandle> {
    const body = { memoryMiB: 16, vcpus: 1, devices: [] as string[], ...spec };
    return this.call<VmHandle>({ app: 'vmm', method: 'POST', path: '/v1/vms', body, token: this.vmmAdminToken });
  }

  /** DELETE /v1/vms/:id with the VMM admin token. */
  async deleteVm(id: number): Promise<void> {
    await this.call({ app: 'vmm', method: 'DELETE', path: `/v1/vms/${id}`, token: this.vmmAdminToken });
  }

  /** POST /v1/vms/:id/start with the VMM admin token. */
  startVm(id: number): Promise<unknown> {
    return this.call({ app: 'vmm', method: 'POST', path: `/v1/vms/${id}/start`, token: this.vmmAdminToken });
  }

  /**
   * Starts a guest OS on the VM and boots it, as `npm start` starts the guest app: on the VM's guest journal
   * (kept across reboots, as a guest's data dir is), its clock at least the operator's (the LAMPORT it is started with).
   */
  async bootGuest(
    vm: VmHandle,
    opts: { traceparent?: string | null; pageRequests?: 'handle' | 'ignore'; /** Tests: wrap the guest's door (fail-when). */ wrapPort?: (port: VmmPort) => VmmPort } = {},
  ): Promise<GuestApp> {
    let db = this.guestDbs.get(vm.id);
    if (!db) {
      db = await openJournal('guest');
      this.guestDbs.set(vm.id, db);
      this.dataSources.push(db.ds);
    }
    db.journal.clock.observe(this.operator.clock.peek());
    const guest = new GuestApp({
      journal: db.journal,
      vmm: (opts.wrapPort ?? ((p: VmmPort) => p))(new InProcessVmm(this.vmm, { app: 'guest', clock: db.journal.clock }, vm.id, vm.token)),
      vmId: vm.id,
      accel: this.opts.accel,
      bootTraceparent: opts.traceparent ?? null,
      pageRequests: opts.pageRequests ?? this.opts.guestPageRequests,
      onVmmLost: () => {
        if (this.guests.get(vm.id) === guest) this.guests.delete(vm.id);
        guest.shutdown();
      },
    });
    this.guests.set(vm.id, guest);
    await runInTrace({ traceId: newTraceId(), spanId: null, caller: null }, () => guest.boot());
    this.operator.clock.observe(db.journal.clock.peek());
    return guest;
  }

  /** A guest console call, as an operator request to the guest app (not marked as an input: tests; replay uses `request`). */
  console<T>(vmId: number, fn: (guest: GuestApp) => Promise<T>): Promise<T> {
    const guest = this.guests.get(vmId);
    if (!guest) throw new Error(`no guest on vm ${vmId}`);
    return this.asOperator({ app: 'guest', clock: guest.journal.clock }, () => fn(guest));
  }

  /** The host kernel as a new host process of the operator's (host SVA, tests): its pid and a port acting as it. */
  async hostProcess(comm: string): Promise<{ pid: number; token: string; k: InProcessHostKernel }> {
    const anon = new InProcessHostKernel(this.host, this.operator);
    const p = await runInTrace({ traceId: newTraceId(), spanId: null, caller: null }, () => anon.createProcess(comm));
    return { ...p, k: anon.as(p.token) };
  }

  /** Every journal by stream name: `operator`, `host-kernel`, `vmm`, `guest-<vm>` (a recording's journals). */
  streams(): Map<string, Journal> {
    const out = new Map<string, Journal>([
      ['operator', this.operatorJournal],
      ['host-kernel', this.host.journal],
      ['vmm', this.vmm.journal],
    ]);
    for (const [id, db] of [...this.guestDbs].sort(([a], [b]) => a - b)) out.set(`guest-${id}`, db.journal);
    return out;
  }

  /** Every journal row of every app, oldest first per app. */
  async journals(): Promise<{ host: JournalEvent[]; vmm: JournalEvent[]; guests: Map<number, JournalEvent[]> }> {
    const guests = new Map<number, JournalEvent[]>();
    for (const [id, db] of this.guestDbs) guests.set(id, await allRows(db.journal));
    return { host: await allRows(this.host.journal), vmm: await allRows(this.vmm.journal), guests };
  }

  /** Lets every queued engine tick and lifeline event run (nothing is waiting on the network here). */
  async settle(rounds = 4): Promise<void> {
    for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
  }

  /** Guests shut down, VMs die with the VMM, every process exits, the databases close. */
  async close(): Promise<void> {
    for (const g of this.guests.values()) g.shutdown();
    this.guests.clear();
    this.vmm.vms.shutdown();
    await this.settle();
    await this.host.shutdown();
    for (const ds of this.dataSources) if (ds.isInitialized) await ds.destroy();
    if (this.opts.seed !== undefined) useSeededIds(null);
  }
}

/** Every row of a journal, paged. */
export function allRows(j: Journal): Promise<JournalEvent[]> {
  return allJournalEvents(j, {});
}

export function createInProcessStack(opts: InProcessStackOptions = {}): Promise<InProcessStack> {
  return InProcessStack.create(opts);
}
