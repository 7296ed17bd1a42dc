// The VMs of one VMM (DESIGN §3), whichever door they are reached by: each VM is its own host process (own
// token, fds and lifeline). Create builds the host side for real and unwinds on failure; delete tears it down in
// reverse. Records survive a VMM restart; the host side does not (the VMM's death is the VM's), so a restart
// rebuilds it: a power cycle. Plain TypeScript: the Nest app and the in-process stack both run this.
import { randomBytes } from 'node:crypto';
import { KernelError } from '@app/shared/errno';
import type { Journal, StateWrite } from '@app/shared/journal/journal';
import type { EventSink } from '@app/shared/lifeline/event-sink';
import { realTimers, type Timers } from '@app/shared/timers';
import type { HostKernelPort } from '../host-kernel.port';
import type { Machine } from '../machine/machine';
import { VmEntity, type VmRow } from '../persistence/vm.entity';
import type { VmRegistry } from '../viommu/vm-registry';
import { requireAdmin, requireVm, type VmmCaller } from '../vmm-caller';
import { HostEvents } from './host-events';
import type { Vm } from './vm-builder';
import { traced, VmPower } from './vm-power';
import { newRuntime, type VmRuntime, type VmView, viewOf } from './vm-view';

export type { VmView } from './vm-view';

export interface VmSpecInput {
  name: string;
  memoryMiB: number;
  vcpus: number;
  devices: string[];
}

export interface VmManagerOptions {
  journal: Journal;
  /** The host kernel, unbound (each VM binds it to its own process's token). */
  host: HostKernelPort;
  pasidQuota: number;
  /** Requests each VM's guest page request queue holds (vIOMMU default otherwise). */
  guestPrqDepth?: number;
  /** This VMM's audit URL once known (sent with every host lifeline). */
  publicUrl: () => string | null;
  /** Where VM tokens come from (random; seeded in deterministic mode). */
  newToken?: () => string;
  /** The waits between two pings of a host kernel that went away (real timers by default). */
  timers?: Timers;
  onError?: (message: string) => void;
}

export class VmManager implements VmRegistry {
  private readonly vms = new Map<number, VmRuntime>();
  private readonly byToken = new Map<string, number>();
  private readonly power: VmPower;
  private readonly journal: Journal;
  private readonly newToken: () => string;
  private readonly onError: (message: string) => void;

  constructor(opts: VmManagerOptions) {
    this.journal = opts.journal;
    this.newToken = opts.newToken ?? (() => randomBytes(16).toString('hex'));
    this.onError = opts.onError ?? (() => undefined);
    const hostEvents = new HostEvents(this.journal, (id, event, data) => this.pushToGuest(id, event, data), this.onError);
    this.power = new VmPower({
      ...opts,
      hostEvents,
      timers: opts.timers ?? realTimers,
      isCurrent: (rt) => this.vms.get(rt.row.id) === rt,
      onError: this.onError,
    });
  }

  /** Loads the VM records; the ones that were running are to be restored (restoreAll). */
  async load(): Promise<void> {
    const rows = await this.journal.store.find<VmRow>(VmEntity, {}, { id: 'ASC' });
    for (const row of rows) {
      this.vms.set(row.id, newRuntime(row, { ready: true, restoring: row.state === 'running' }));
      this.byToken.set(row.token, row.id);
    }
  }

  /**
   * After a restart, rebuild the host side of every VM that was running (a power cycle), in the background:
   * the VMM answers (VMs listed as `starting`) while a slow or absent host kernel is waited for.
   */
  async restoreAll(): Promise<void> {
    for (const rt of this.vms.values()) if (rt.restoring) await this.power.restore(rt);
  }

  /** SIGTERM: the VMM's VMs die with it. Dropping each lifeline makes the host close every fd. */
  shutdown(): void {
    this.power.close();
    for (const rt of this.vms.values()) {
      rt.stopping = true;
      rt.guestLifeline?.end();
      rt.hostLifeline?.close();
    }
  }

  list(caller: VmmCaller): VmView[] {
    requireAdmin(caller);
    return [...this.vms.values()].filter((rt) => rt.ready).map((rt) => viewOf(rt, true));
  }

  /** The VM's own token reads it in guest terms; the admin also sees its host side. */
  get(caller: VmmCaller, id: number): VmView {
    requireVm(caller, id, true);
    return viewOf(this.runtime(id), caller.kind === 'admin');
  }

  idForToken(token: string): number | undefined {
    return this.byToken.get(token);
  }

  machine(id: number): Machine {
    return this.running(id).machine;
  }

  /** The running VM: guest-facing calls need its host side (EAGAIN while a restart rebuilds it, ENODEV when stopped). */
  running(id: number): Vm {
    const rt = this.runtime(id);
    if (rt.vm) return rt.vm;
    if (rt.restoring) throw new KernelError('EAGAIN', `vm ${id} is starting`);
    throw new KernelError('ENODEV', `vm ${id} is stopped (${rt.row.stopReason ?? 'powered off'})`);
  }

  async create(caller: VmmCaller, spec: VmSpecInput): Promise<{ id: number; token: string }> {
    requireAdmin(caller);
    let rt: VmRuntime | null = null;
    try {
      const r = await this.journal.run(
        { operation: 'vm.create', actor: 'admin', args: spec, object: (x) => `vm:${x.id}`, recordResult: (x) => ({ id: x.id }) },
        async () => {
          if ([...this.vms.values()].some((v) => v.row.name === spec.name)) throw new KernelError('EEXIST', `a vm named "${spec.name}" exists`);
          const id = Math.max(0, ...this.vms.keys()) + 1;
          const row: VmRow = {
            id,
            name: spec.name,
            memoryMiB: spec.memoryMiB,
            vcpus: spec.vcpus,
            devices: JSON.stringify(spec.devices),
            token: this.newToken(),
            state: 'running',
            stopReason: null,
            hostPid: null,
            createdMs: Date.now(),
          };
          rt = newRuntime(row, { ready: false, restoring: false });
          // Reserve the id and name before the first await, so two concurrent creates cannot share them.
          this.vms.set(id, rt);
          await this.power.start(rt);
          return { id, token: row.token };
        },
        (): StateWrite[] => (rt ? [{ entity: VmEntity, insert: { ...(rt as VmRuntime).row } }] : []),
      );
      const created = rt as VmRuntime | null;
      if (created) {
        created.ready = true;
        this.byToken.set(created.row.token, created.row.id);
      }
      return r;
    } catch (err) {
      // All-or-nothing: whatever was built is torn down and the id is not consumed.
      const failed = rt as VmRuntime | null;
      if (failed) {
        await this.power.stop(failed).catch(() => undefined);
        this.vms.delete(failed.row.id);
        this.byToken.delete(failed.row.token);
      }
      throw err;
    }
  }

  async remove(caller: VmmCaller, id: number): Promise<void> {
    requireAdmin(caller);
    const rt = this.runtime(id);
    await this.journal.run(
      { operation: 'vm.destroy', actor: 'admin', object: `vm:${id}` },
      async () => {
        const errors = await this.power.stop(rt);
        return { hostErrors: errors.map((e) => `${e.errno}: ${e.message}`) };
      },
      (): StateWrite[] => [{ entity: VmEntity, delete: { id } }],
    );
    this.vms.delete(id);
    this.byToken.delete(rt.row.token);
  }

  /**
   * Powers a stopped VM on again (its host process died, e.g. with a host kernel): its host side is built anew,
   * as a restore does. EBUSY while it runs, EAGAIN while it is starting; a failed start leaves it stopped as it
   * was (the builder unwound what it built). A guest may then boot on it.
   */
  async powerOn(caller: VmmCaller, id: number): Promise<VmView> {
    requireAdmin(caller);
    const rt = this.runtime(id);
    if (rt.vm) throw new KernelError('EBUSY', `vm ${id} is running`);
    if (rt.restoring) throw new KernelError('EAGAIN', `vm ${id} is starting`);
    return this.power.startStopped(rt, 'admin');
  }

  // ---- guest lifeline ---------------------------------------------------------------------------

  attachGuest(caller: VmmCaller, id: number, sink: EventSink): void {
    requireVm(caller, id);
    const rt = this.runtime(id);
    if (!rt.vm) throw new KernelError('ENODEV', `vm ${id} is stopped`);
    if (rt.guestLifeline) throw new KernelError('EBUSY', `vm ${id} already has a guest attached`);
    rt.guestLifeline = sink;
  }

  /** The guest died: its vIOMMU bindings go (as on a guest reset), the VM itself stays. */
  async guestDropped(id: number, sink: EventSink): Promise<void> {
    const rt = this.vms.get(id);
    if (!rt || rt.guestLifeline !== sink) return;
    rt.guestLifeline = null;
    const vm = rt.vm;
    if (!vm || rt.stopping) return;
    await traced(() =>
      this.journal.run({ operation: 'vm.guest_exit', actor: `vm:${id}`, object: `vm:${id}` }, async () => {
        // A guest reset: its bindings go, the vIOMMU stays open for the next guest to boot on.
        const errors = await vm.viommu.reset();
        return { released: true, hostErrors: errors.map((e) => e.errno) };
      }),
    ).catch((err: unknown) => this.onError(`guest exit of vm ${id}: ${String(err)}`));
  }

  pushToGuest(id: number, event: string, data: unknown): void {
    this.vms.get(id)?.guestLifeline?.send(event, data);
  }

  private runtime(id: number): VmRuntime {
    const rt = this.vms.get(id);
    if (!rt || !rt.ready) throw new KernelError('ENOENT', `no vm ${id}`);
    return rt;
  }
}
