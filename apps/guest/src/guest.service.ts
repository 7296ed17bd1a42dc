import { type BeforeApplicationShutdown, Inject, Injectable, Logger } from '@nestjs/common';
import type { LamportClock } from '@app/shared/clock';
import { holdLifeline, type Lifeline } from '@app/shared/http/lifeline';
import { RestClient } from '@app/shared/http/rest-client';
import { VmmClient } from '@app/shared/http/vmm.client';
import type { Journal, OperationMeta } from '@app/shared/journal/journal';
import { APP_CONFIG, CLOCK, JOURNAL } from '@app/shared/nest/tokens';
import { newTraceId, parseTraceparent, runInTrace } from '@app/shared/trace';
import type { GuestConfig } from './config';
import { GuestOs, type GuestStatus } from './guest-os';

export interface GuestServiceStatus extends GuestStatus {
  vmId: number;
  vmmAttached: boolean;
  bootedAtMs: number | null;
}

/**
 * The guest OS instance of this process (one OS per process): boots against its VMM — machine
 * description, lifeline, PASID directories registered with the vIOMMU, vCPU reset — then serves
 * its processes, SVA binds and accelerator submissions, each journaled.
 */
@Injectable()
export class GuestService implements BeforeApplicationShutdown {
  private readonly logger = new Logger('GuestService');
  readonly vmm: VmmClient;
  readonly os: GuestOs;
  private lifeline: Lifeline | null = null;
  private vmmAttached = false;
  private bootedAtMs: number | null = null;

  constructor(
    @Inject(APP_CONFIG) readonly config: GuestConfig,
    @Inject(JOURNAL) readonly journal: Journal,
    @Inject(CLOCK) clock: LamportClock,
  ) {
    this.vmm = new VmmClient(new RestClient({ baseUrl: config.vmmUrl, app: 'guest', clock, token: config.vmToken }), config.vmId);
    this.os = new GuestOs(this.vmm);
  }

  status(): GuestServiceStatus {
    return { ...this.os.status(), vmId: this.config.vmId, vmmAttached: this.vmmAttached, bootedAtMs: this.bootedAtMs };
  }

  /** Runs a guest operation journaled under the guest's actor. */
  run<T>(meta: Omit<OperationMeta<T>, 'actor'> & { actor?: string }, fn: () => Promise<T>): Promise<T> {
    return this.journal.run({ actor: `vm:${this.config.vmId}`, ...meta }, fn);
  }

  /** Boot: runs under TRACEPARENT when given, so the VM's creation and this boot are one trace. */
  async boot(): Promise<void> {
    const tp = parseTraceparent(this.config.bootTraceparent);
    await runInTrace({ traceId: tp?.traceId ?? newTraceId(), spanId: tp?.parentId ?? null, caller: tp ? 'operator' : null }, () =>
      this.run({ operation: 'guest.boot', object: `vm:${this.config.vmId}` }, async () => {
        this.lifeline = holdLifeline(this.vmm.lifelineUrl(), {
          app: 'guest',
          token: this.config.vmToken,
          auditUrl: this.config.publicUrl,
          onEnd: (reason) => this.vmmLost(reason),
          // vIOMMU fault records the VMM pushes (virtual ids only): the guest journals what it was told.
          onEvent: (e) => {
            if (e.event === 'fault')
              void this.journal
                .record({ operation: 'viommu.fault', actor: `vm:${this.config.vmId}`, object: `vm:${this.config.vmId}`, args: e.data })
                .catch((err: unknown) => this.logger.error(`journal: ${String(err)}`));
          },
        });
        await this.lifeline.opened;
        this.vmmAttached = true;
        const machine = await this.os.boot();
        // Architectural reset of each vCPU's IA32_PASID (valid bit clear), as firmware leaves it.
        for (let vcpu = 0; vcpu < machine.vcpus; vcpu++) await this.vmm.wrmsr(vcpu, 'IA32_PASID', 0);
        this.bootedAtMs = Date.now();
        return { memoryMiB: machine.memoryMiB, vcpus: machine.vcpus, devices: machine.devices.map((d) => d.vrid) };
      }),
    );
  }

  beforeApplicationShutdown(): void {
    this.lifeline?.close();
  }

  /**
   * The VMM is gone (or dropped us): the machine under this OS vanished, as a guest dies with its
   * QEMU. This guest OS instance shuts down; a new one boots when the VM is started again.
   */
  private vmmLost(reason: string): void {
    this.vmmAttached = false;
    this.logger.error(`lost the VMM (${reason}): the machine is gone, shutting down`);
    process.kill(process.pid, 'SIGTERM');
  }
}
