import { type BeforeApplicationShutdown, Inject, Injectable, Logger, type OnApplicationBootstrap, type OnModuleInit } from '@nestjs/common';
import type { Response } from 'express';
import { DataSource } from 'typeorm';
import type { LamportClock } from '@app/shared/clock';
import type { FaultRecord } from '@app/shared/contract/host-kernel';
import { KernelError } from '@app/shared/errno';
import { HostKernelClient } from '@app/shared/http/host-kernel.client';
import { holdLifeline, type Lifeline } from '@app/shared/http/lifeline';
import { RestClient } from '@app/shared/http/rest-client';
import type { Journal } from '@app/shared/journal/journal';
import { APP_CONFIG, CLOCK, JOURNAL } from '@app/shared/nest/tokens';
import { newTraceId, runInTrace } from '@app/shared/trace';
import { randomBytes } from 'node:crypto';
import type { VmmConfig } from '../config';
import type { Machine } from '../machine/machine';
import { VmEntity, type VmRow } from '../persistence/vm.entity';
import { withStall } from './debug-stall';
import { type Vm, VmBuilder } from './vm-builder';

/** One VM as the VMM runs it: its record, its host side (null when stopped) and its two lifelines. */
interface VmRuntime {
  row: VmRow;
  vm: Vm | null;
  hostLifeline: Lifeline | null;
  guestLifeline: Response | null;
  /** Set while the VMM itself tears the host side down, so the host's end of the lifeline is expected. */
  stopping: boolean;
  /** False while `create` is still building it: the id is reserved but the VM does not exist yet. */
  ready: boolean;
  /** True while a VMM restart rebuilds its host side. */
  restoring: boolean;
}

export interface VmView {
  id: number;
  name: string;
  memoryMiB: number;
  vcpus: number;
  devices: string[];
  state: 'running' | 'starting' | 'stopped';
  stopReason: string | null;
  guestAttached: boolean;
}

/**
 * VMs: each is its own host process (own token, own fds, own lifeline). Create builds the host side
 * for real and unwinds on failure; delete tears it down in reverse. Records survive a VMM restart;
 * the host side does not (the VMM's death is the VM's), so a restart rebuilds it: a power cycle.
 */
@Injectable()
export class VmService implements OnModuleInit, OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('VmService');
  private readonly vms = new Map<number, VmRuntime>();
  private readonly byToken = new Map<string, number>();
  readonly host: HostKernelClient;
  private readonly builder: VmBuilder;

  constructor(
    @Inject(APP_CONFIG) private readonly config: VmmConfig,
    @Inject(JOURNAL) private readonly journal: Journal,
    @Inject(CLOCK) clock: LamportClock,
    private readonly ds: DataSource,
  ) {
    this.host = withStall(new HostKernelClient(new RestClient({ baseUrl: config.hostKernelUrl, app: 'vmm', clock })), config.debugStallBefore);
    this.builder = new VmBuilder(this.host);
  }

  async onModuleInit(): Promise<void> {
    const rows = await this.ds.getRepository(VmEntity).find({ order: { id: 'ASC' } });
    for (const row of rows) {
      this.vms.set(row.id, { row, vm: null, hostLifeline: null, guestLifeline: null, stopping: false, ready: true, restoring: row.state === 'running' });
      this.byToken.set(row.token, row.id);
    }
  }

  /**
   * After a restart, rebuild the host side of every VM that was running (a power cycle), in the
   * background: the VMM answers (VMs listed as `starting`) while a slow or absent host kernel is waited for.
   */
  onApplicationBootstrap(): void {
    void (async () => {
      for (const rt of this.vms.values()) if (rt.restoring) await this.restore(rt);
    })();
  }

  private async restore(rt: VmRuntime): Promise<void> {
    await runInTrace({ traceId: newTraceId(), spanId: null, caller: null }, () =>
      this.journal
        .run(
          { operation: 'vm.restore', actor: 'vmm', object: `vm:${rt.row.id}`, args: { reason: 'vmm restart' } },
          async () => {
            await this.start(rt);
            return { hostPid: rt.row.hostPid };
          },
          () => async (em) => {
            await em.getRepository(VmEntity).update({ id: rt.row.id }, { hostPid: rt.row.hostPid, state: 'running', stopReason: null });
          },
        )
        .catch(async (err: unknown) => {
          // The builder unwound what it built; drop the lifeline too (the process is already gone).
          rt.hostLifeline?.close();
          rt.hostLifeline = null;
          await this.markStopped(rt, `restore failed: ${(err as Error).message}`);
        })
        .finally(() => {
          rt.restoring = false;
        }),
    );
  }

  async beforeApplicationShutdown(): Promise<void> {
    // SIGTERM: the VMM's VMs die with it. Dropping each lifeline makes the host close every fd.
    for (const rt of this.vms.values()) {
      rt.stopping = true;
      rt.guestLifeline?.end();
      rt.hostLifeline?.close();
    }
  }

  list(): VmView[] {
    return [...this.vms.values()].filter((rt) => rt.ready).map((rt) => view(rt));
  }

  get(id: number): VmView {
    return view(this.runtime(id));
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
    if (rt.restoring) throw new KernelError('EAGAIN', `vm ${id} is starting: its host side is being rebuilt`);
    throw new KernelError('ENODEV', `vm ${id} is stopped: ${rt.row.stopReason ?? 'no host side'}`);
  }

  async create(spec: { name: string; memoryMiB: number; vcpus: number; devices: string[] }): Promise<{ id: number; token: string }> {
    let rt: VmRuntime | null = null;
    try {
      return await this.journal.run(
        { operation: 'vm.create', actor: 'admin', args: spec, object: (r) => `vm:${r.id}`, recordResult: (r) => ({ id: r.id }) },
        async () => {
          if ([...this.vms.values()].some((v) => v.row.name === spec.name)) throw new KernelError('EEXIST', `a vm named "${spec.name}" exists`);
          const id = Math.max(0, ...this.vms.keys()) + 1;
          const row: VmRow = {
            id,
            name: spec.name,
            memoryMiB: spec.memoryMiB,
            vcpus: spec.vcpus,
            devices: JSON.stringify(spec.devices),
            token: randomBytes(16).toString('hex'),
            state: 'running',
            stopReason: null,
            hostPid: null,
            createdMs: Date.now(),
          };
          rt = { row, vm: null, hostLifeline: null, guestLifeline: null, stopping: false, ready: false, restoring: false };
          // Reserve the id and name before the first await, so two concurrent creates cannot share them.
          this.vms.set(id, rt);
          await this.start(rt);
          return { id, token: row.token };
        },
        () => async (em) => {
          if (rt) await em.getRepository(VmEntity).insert(rt.row);
        },
      ).then((r) => {
        const created = rt as VmRuntime | null;
        if (created) {
          created.ready = true;
          this.byToken.set(created.row.token, created.row.id);
        }
        return r;
      });
    } catch (err) {
      // All-or-nothing: whatever was built is torn down and the id is not consumed.
      const failed = rt as VmRuntime | null;
      if (failed) {
        await this.stop(failed).catch(() => undefined);
        this.vms.delete(failed.row.id);
        this.byToken.delete(failed.row.token);
      }
      throw err;
    }
  }

  async remove(id: number): Promise<void> {
    const rt = this.runtime(id);
    await this.journal.run({ operation: 'vm.destroy', actor: 'admin', object: `vm:${id}` }, async () => {
      const errors = await this.stop(rt);
      return { hostErrors: errors.map((e) => `${e.errno}: ${e.message}`) };
    }, () => async (em) => {
      await em.getRepository(VmEntity).delete({ id });
    });
    this.vms.delete(id);
    this.byToken.delete(rt.row.token);
  }

  // ---- guest lifeline ---------------------------------------------------------------------------

  attachGuest(id: number, res: Response): void {
    const rt = this.runtime(id);
    if (!rt.vm) throw new KernelError('ENODEV', `vm ${id} is stopped`);
    if (rt.guestLifeline) throw new KernelError('EBUSY', `vm ${id} already has a guest attached`);
    rt.guestLifeline = res;
  }

  /** The guest died: its vIOMMU bindings go (as on a guest reset), the VM itself stays. */
  async guestDropped(id: number, res: Response): Promise<void> {
    const rt = this.vms.get(id);
    if (!rt || rt.guestLifeline !== res) return;
    rt.guestLifeline = null;
    const vm = rt.vm;
    if (!vm || rt.stopping) return;
    await runInTrace({ traceId: newTraceId(), spanId: null, caller: null }, () =>
      this.journal.run({ operation: 'vm.guest_exit', actor: `vm:${id}`, object: `vm:${id}` }, async () => {
        // A guest reset: its bindings go, the vIOMMU stays open for the next guest to boot on.
        const errors = await vm.viommu.reset();
        return { released: true, hostErrors: errors.map((e) => e.errno) };
      }),
    ).catch((err: unknown) => this.logger.error(`guest exit of vm ${id}: ${String(err)}`));
  }

  pushToGuest(id: number, event: string, data: unknown): void {
    this.vms.get(id)?.guestLifeline?.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  // ---- host side ----------------------------------------------------------------------------------

  private async start(rt: VmRuntime): Promise<void> {
    const devices = JSON.parse(rt.row.devices) as string[];
    let ended: string | null = null;
    const vm = await this.builder.build(
      { name: rt.row.name, memoryMiB: rt.row.memoryMiB, vcpus: rt.row.vcpus, devices, pasidQuota: this.config.pasidQuota },
      async (pid, token) => {
        const lifeline = holdLifeline(this.host.lifelineUrl(pid), {
          app: 'vmm',
          token,
          auditUrl: this.config.publicUrl,
          onEvent: (e) => this.onHostEvent(rt, e.event, e.data),
          onEnd: (reason) => {
            ended = reason;
            void this.hostSideDied(rt, pid, reason);
          },
        });
        rt.hostLifeline = lifeline;
        await lifeline.opened;
      },
    );
    if (ended !== null) {
      // The host process died while we built: the VM never existed.
      await this.builder.teardown(vm);
      throw new KernelError('EIO', `vm ${rt.row.id}: its host process ended during the build (${String(ended)})`);
    }
    rt.vm = vm;
    rt.row.hostPid = vm.handles.pid;
    rt.stopping = false;
  }

  private async stop(rt: VmRuntime): Promise<KernelError[]> {
    rt.stopping = true;
    const vm = rt.vm;
    rt.vm = null;
    rt.guestLifeline?.end();
    rt.guestLifeline = null;
    const errors = vm ? await this.builder.teardown(vm) : [];
    rt.hostLifeline?.close();
    rt.hostLifeline = null;
    return errors;
  }

  private onHostEvent(rt: VmRuntime, event: string, data: unknown): void {
    if (event !== 'fault' || !rt.vm) return;
    const fault = rt.vm.viommu.translateHostFault(data as FaultRecord);
    if (fault) this.pushToGuest(rt.row.id, 'fault', fault);
  }

  /** The host ended the VM's process (killed, or the host kernel went away): the VM is stopped. */
  private async hostSideDied(rt: VmRuntime, pid: number, reason: string): Promise<void> {
    const vm = rt.vm;
    // Expected when we tear it down ourselves, and meaningless for a build that has not finished (it unwinds).
    if (rt.stopping || !vm || vm.handles.pid !== pid) return;
    rt.vm = null;
    rt.hostLifeline = null;
    rt.guestLifeline?.end();
    rt.guestLifeline = null;
    await this.markStopped(rt, `host process ${pid} ended: ${reason}`);
  }

  private async markStopped(rt: VmRuntime, reason: string): Promise<void> {
    rt.row.state = 'stopped';
    rt.row.stopReason = reason;
    await runInTrace({ traceId: newTraceId(), spanId: null, caller: null }, () =>
      this.journal.run({ operation: 'vm.stopped', actor: 'vmm', object: `vm:${rt.row.id}`, args: { reason } }, () => ({ stopped: true }), () => async (em) => {
        await em.getRepository(VmEntity).update({ id: rt.row.id }, { state: 'stopped', stopReason: reason });
      }),
    ).catch((err: unknown) => this.logger.error(`vm ${rt.row.id}: ${String(err)}`));
  }

  private runtime(id: number): VmRuntime {
    const rt = this.vms.get(id);
    if (!rt || !rt.ready) throw new KernelError('ENOENT', `no vm ${id}`);
    return rt;
  }
}

function view(rt: VmRuntime): VmView {
  return {
    id: rt.row.id,
    name: rt.row.name,
    memoryMiB: rt.row.memoryMiB,
    vcpus: rt.row.vcpus,
    devices: JSON.parse(rt.row.devices) as string[],
    state: rt.vm ? 'running' : rt.restoring ? 'starting' : 'stopped',
    stopReason: rt.vm || rt.restoring ? null : rt.row.stopReason,
    guestAttached: rt.guestLifeline !== null,
  };
}
