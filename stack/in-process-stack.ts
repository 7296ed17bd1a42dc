// The whole stack in one process, from the real code (DESIGN §8): a host kernel, a VMM and any number of guest
// OSes, each with its own journal (in-memory SQLite) and Lamport clock, wired through the in-process adapters
// of HostKernelPort and VmmPort. Unit tests, benchmarks, the fuzzer and replay compose it; what differs from
// the three spawned apps is only the transport.
import { randomBytes } from 'node:crypto';
import { LamportClock } from '@app/shared/clock';
import type { Journal, JournalEvent } from '@app/shared/journal/journal';
import { newTraceId, runInTrace } from '@app/shared/trace';
import type { DataSource } from 'typeorm';
import { GuestApp } from '../apps/guest/src/guest.app';
import type { AccelOptions } from '../apps/guest/src/drivers/accel-driver';
import type { EngineOptions } from '../apps/host-kernel/src/devices/device-set';
import type { FaultInjector } from '../apps/host-kernel/src/fault-injection';
import type { HostKernelApp } from '../apps/host-kernel/src/host-kernel.app';
import type { DeviceConfig } from '../apps/host-kernel/src/kernel';
import type { Limits } from '../apps/host-kernel/src/limits/limits';
import type { HostKernelPort } from '../apps/vmm/src/host-kernel.port';
import { CreateVm1764000000002, VmEntity } from '../apps/vmm/src/persistence/vm.entity';
import { VmmApp } from '../apps/vmm/src/vmm.app';
import { cross, type Side } from './crossing';
import { InProcessHostKernel } from './host-kernel.in-process';
import { openInProcessHost, openJournal } from './in-process-host';
import { InProcessVmm } from './vmm.in-process';

export { STACK_DEVICES } from './in-process-host';

export interface InProcessStackOptions {
  devices?: DeviceConfig[];
  memoryMiB?: number;
  pasidQuota?: number;
  engine?: EngineOptions;
  faults?: FaultInjector;
  /** The host kernel's resource limits (PASID_LIMIT & co.; defaults otherwise). */
  limits?: Partial<Limits>;
  /** Wraps the VMM's door to the host kernel (fault injection: fail chosen calls before they reach it). */
  wrapHost?: (port: HostKernelPort) => HostKernelPort;
  accel?: AccelOptions;
}

export interface VmHandle {
  id: number;
  token: string;
}

export class InProcessStack {
  readonly guests = new Map<number, GuestApp>();
  /** The operator's side of every call it makes (its own clock, as a REST client has). */
  readonly operator: Side = { app: 'operator', clock: new LamportClock() };
  private readonly dataSources: DataSource[] = [];

  private constructor(
    readonly host: HostKernelApp,
    readonly vmm: VmmApp,
    readonly hostAdminToken: string,
    readonly vmmAdminToken: string,
    private readonly opts: InProcessStackOptions,
  ) {}

  static async create(opts: InProcessStackOptions = {}): Promise<InProcessStack> {
    const { host, adminToken: hostAdminToken, ds: hostDs } = await openInProcessHost(opts);
    const vmmDb = await openJournal('vmm', [VmEntity], [CreateVm1764000000002]);
    const vmmAdminToken = randomBytes(16).toString('hex');
    const port = new InProcessHostKernel(host, { app: 'vmm', clock: vmmDb.journal.clock });
    const vmm = await VmmApp.open({ journal: vmmDb.journal, host: opts.wrapHost ? opts.wrapHost(port) : port, adminToken: vmmAdminToken, pasidQuota: opts.pasidQuota ?? 64 });
    const stack = new InProcessStack(host, vmm, hostAdminToken, vmmAdminToken, opts);
    stack.dataSources.push(hostDs, vmmDb.ds);
    return stack;
  }

  /** Runs `fn` as an operator request: a fresh trace, then the callee's side of the call. */
  private asOperator<T>(to: Side, fn: () => Promise<T> | T): Promise<T> {
    return runInTrace({ traceId: newTraceId(), spanId: null, caller: null }, () => cross(this.operator, to, fn));
  }

  private get vmmSide(): Side {
    return { app: 'vmm', clock: this.vmm.journal.clock };
  }

  /** POST /v1/vms with the VMM admin token. */
  createVm(spec: { name: string; memoryMiB?: number; vcpus?: number; devices?: string[] }): Promise<VmHandle> {
    const full = { memoryMiB: 16, vcpus: 1, devices: [] as string[], ...spec };
    return this.asOperator(this.vmmSide, () => this.vmm.vms.create(this.vmm.authorize('admin', this.vmmAdminToken), full));
  }

  /** DELETE /v1/vms/:id with the VMM admin token. */
  deleteVm(id: number): Promise<void> {
    return this.asOperator(this.vmmSide, () => this.vmm.vms.remove(this.vmm.authorize('admin', this.vmmAdminToken), id));
  }

  /** POST /v1/vms/:id/start with the VMM admin token. */
  startVm(id: number): Promise<unknown> {
    return this.asOperator(this.vmmSide, () => this.vmm.vms.powerOn(this.vmm.authorize('admin', this.vmmAdminToken), id));
  }

  /** Starts a guest OS on the VM (its own journal) and boots it, as `npm start` starts the guest app. */
  async bootGuest(vm: VmHandle): Promise<GuestApp> {
    const db = await openJournal('guest');
    this.dataSources.push(db.ds);
    const guest = new GuestApp({
      journal: db.journal,
      vmm: new InProcessVmm(this.vmm, { app: 'guest', clock: db.journal.clock }, vm.id, vm.token),
      vmId: vm.id,
      accel: this.opts.accel,
      onVmmLost: () => this.guests.delete(vm.id),
    });
    this.guests.set(vm.id, guest);
    await runInTrace({ traceId: newTraceId(), spanId: null, caller: null }, () => guest.boot());
    return guest;
  }

  /** A guest console call, as an operator request to the guest app. */
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

  /** Every journal row of every app, oldest first per app. */
  async journals(): Promise<{ host: JournalEvent[]; vmm: JournalEvent[]; guests: Map<number, JournalEvent[]> }> {
    const all = async (j: Journal): Promise<JournalEvent[]> => {
      const out: JournalEvent[] = [];
      for (let page = await j.events({ limit: 10_000 }); page.length > 0; page = await j.events({ limit: 10_000, afterSeq: page.at(-1)?.seq })) out.push(...page);
      return out;
    };
    const guests = new Map<number, JournalEvent[]>();
    for (const [id, g] of this.guests) guests.set(id, await all(g.journal));
    return { host: await all(this.host.journal), vmm: await all(this.vmm.journal), guests };
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
  }
}

export function createInProcessStack(opts: InProcessStackOptions = {}): Promise<InProcessStack> {
  return InProcessStack.create(opts);
}
