// The host side of the VMs (DESIGN §3, §6): building it (a create, a restore after a VMM restart, a start), tearing
// it down, and what happens when the host ends it. A host that ends one VM's process leaves that VM stopped; a
// host kernel that goes away (crash, reboot) takes every VM's process, and the VMM brings them back by itself once
// it answers again (host-reconnect.ts). VmManager (vm-manager.ts) holds the VMs and decides who may ask for what.
import { KernelError } from '@app/shared/errno';
import type { Journal, StateWrite } from '@app/shared/journal/journal';
import { newTraceId, runInTrace } from '@app/shared/trace';
import type { Timers } from '@app/shared/timers';
import type { HostKernelPort } from '../host-kernel.port';
import { VmEntity } from '../persistence/vm.entity';
import type { HostEvents } from './host-events';
import { HostReconnect, hostUnreachable, hostWentAway } from './host-reconnect';
import { VmBuilder } from './vm-builder';
import { hostSideEnded, powerOnFailed, type StopCause, type VmRuntime, type VmView, viewOf } from './vm-view';

export interface VmPowerOptions {
  journal: Journal;
  /** The host kernel, unbound (each VM binds it to its own process's token). */
  host: HostKernelPort;
  pasidQuota: number;
  guestPrqDepth?: number;
  publicUrl: () => string | null;
  hostEvents: HostEvents;
  timers: Timers;
  /** Whether `rt` is still the VMM's VM (not deleted meanwhile). */
  isCurrent: (rt: VmRuntime) => boolean;
  onError: (message: string) => void;
}

export const traced = <T>(fn: () => Promise<T>): Promise<T> => runInTrace({ traceId: newTraceId(), spanId: null, caller: null }, fn);

export class VmPower {
  private readonly builder: VmBuilder;
  private readonly journal: Journal;
  private readonly reconnect: HostReconnect;
  private closed = false;

  constructor(private readonly opts: VmPowerOptions) {
    this.journal = opts.journal;
    this.builder = new VmBuilder(opts.host);
    this.reconnect = new HostReconnect(() => opts.host.health(), opts.timers);
  }

  /** The VMM goes down: nothing is brought back any more. */
  close(): void {
    this.closed = true;
    this.reconnect.stop();
  }

  /** After a VMM restart: the host side of a VM that was running is built again (`vm.restore`). */
  async restore(rt: VmRuntime): Promise<void> {
    const hostAbsent = await traced(() =>
      this.journal
        .run(
          { operation: 'vm.restore', actor: 'vmm', object: `vm:${rt.row.id}`, args: { reason: 'vmm restart' } },
          async () => {
            await this.start(rt);
            return { hostPid: rt.row.hostPid };
          },
          (): StateWrite[] => [{ entity: VmEntity, update: { hostPid: rt.row.hostPid, state: 'running', stopReason: null }, where: { id: rt.row.id } }],
        )
        .then(() => false)
        .catch(async (err: unknown) => {
          // The builder unwound what it built; drop the lifeline too (the process is already gone).
          rt.hostLifeline?.close();
          rt.hostLifeline = null;
          await this.markStopped(rt, powerOnFailed('restore after a VMM restart', err));
          return hostUnreachable(err);
        })
        .finally(() => {
          rt.restoring = false;
        }),
    );
    // No host kernel to restore on yet: the VM comes back when it answers (without holding up the other VMs).
    if (hostAbsent) void this.bringBack(rt);
  }

  /** `vm.start` of a stopped VM by `actor` (the admin, or the VMM itself bringing it back: then `args` say why). */
  async startStopped(rt: VmRuntime, actor: 'admin' | 'vmm', args?: { reason: string }): Promise<VmView> {
    const id = rt.row.id;
    rt.restoring = true;
    try {
      await this.journal.run(
        { operation: 'vm.start', actor, object: `vm:${id}`, args },
        async () => {
          await this.start(rt).catch((err: unknown) => {
            rt.hostLifeline?.close();
            rt.hostLifeline = null;
            throw err;
          });
          return { hostPid: rt.row.hostPid };
        },
        (): StateWrite[] => [{ entity: VmEntity, update: { hostPid: rt.row.hostPid, state: 'running', stopReason: null }, where: { id } }],
      );
      rt.row.state = 'running';
      rt.row.stopReason = null;
      rt.hostDetail = null;
    } catch (err) {
      // Built, but its row could not be written: the start did not happen (all-or-nothing).
      if (rt.vm) await this.stop(rt).catch(() => undefined);
      throw err;
    } finally {
      rt.restoring = false;
    }
    return viewOf(rt, true);
  }

  /** Builds the VM's host side; its host lifeline is held from the first step (vm-builder.ts). */
  async start(rt: VmRuntime): Promise<void> {
    const devices = JSON.parse(rt.row.devices) as string[];
    let ended: string | null = null;
    rt.hostExit = null;
    const vm = await this.builder.build(
      { name: rt.row.name, memoryMiB: rt.row.memoryMiB, vcpus: rt.row.vcpus, devices, pasidQuota: this.opts.pasidQuota, prqDepth: this.opts.guestPrqDepth },
      async (pid, token) => {
        const lifeline = this.opts.host.as(token).holdLifeline(pid, {
          auditUrl: this.opts.publicUrl(),
          onEvent: (e) => {
            if (e.event === 'exit') rt.hostExit = String((e.data as { reason?: unknown }).reason ?? 'exit');
            if (rt.vm) this.opts.hostEvents.handle(rt.row.id, rt.vm, e.event, e.data);
          },
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

  /** Tears the host side down in reverse (vIOMMU bindings first); returns what failed on the way. */
  async stop(rt: VmRuntime): Promise<KernelError[]> {
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

  /** The host ended the VM's process (killed, or the host kernel went away): the VM is stopped. */
  private async hostSideDied(rt: VmRuntime, pid: number, reason: string): Promise<void> {
    const vm = rt.vm;
    // Expected when we tear it down ourselves, and meaningless for a build that has not finished (it unwinds).
    if (rt.stopping || !vm || vm.handles.pid !== pid) return;
    rt.vm = null;
    rt.hostLifeline = null;
    rt.guestLifeline?.end();
    rt.guestLifeline = null;
    await this.markStopped(rt, hostSideEnded(pid, rt.hostExit ?? reason));
    if (hostWentAway(rt.hostExit)) await this.bringBack(rt);
  }

  /**
   * The host kernel went away with the VM's process: once it answers again, the VMM powers the VM on by itself
   * (`vm.start`, actor vmm) — unless it was deleted or started by the operator meanwhile, or the VMM stops. A start
   * the host refuses for another reason than being gone leaves the VM stopped (its row says why).
   */
  private async bringBack(rt: VmRuntime): Promise<void> {
    while (await this.reconnect.untilBack()) {
      if (this.closed || !this.opts.isCurrent(rt) || rt.vm || rt.restoring) return;
      const done = await traced(() => this.startStopped(rt, 'vmm', { reason: 'the host kernel is back' })).then(
        () => true,
        (err: unknown) => !hostUnreachable(err),
      );
      if (done) return;
    }
  }

  /** The VM is stopped: its record keeps the guest-terms reason, the journal row both (the audit plane is the operator's). */
  private async markStopped(rt: VmRuntime, cause: StopCause): Promise<void> {
    rt.row.state = 'stopped';
    rt.row.stopReason = cause.guest;
    rt.hostDetail = cause.host;
    await traced(() =>
      this.journal.run(
        { operation: 'vm.stopped', actor: 'vmm', object: `vm:${rt.row.id}`, args: { reason: cause.guest, host: cause.host } },
        () => ({ stopped: true }),
        (): StateWrite[] => [{ entity: VmEntity, update: { state: 'stopped', stopReason: cause.guest }, where: { id: rt.row.id } }],
      ),
    ).catch((err: unknown) => this.opts.onError(`vm ${rt.row.id}: ${String(err)}`));
  }
}
