// The Nest side of the guest: builds the one GuestApp over the app's journal with a REST VmmPort, boots it once
// listening (see main.ts), and shuts this process down when the VMM drops it (a guest dies with its QEMU).
import { type BeforeApplicationShutdown, Inject, Injectable } from '@nestjs/common';
import type { StateView } from '@app/shared/audit/state-view';
import { StackPeerKey } from '@app/shared/auth/stack-peer';
import type { LamportClock } from '@app/shared/clock';
import { processStallKnob } from '@app/shared/debug/stall-knob';
import { RestClient } from '@app/shared/http/rest-client';
import { VmmClient } from '@app/shared/http/vmm.client';
import type { Journal } from '@app/shared/journal/journal';
import type { Logger } from '@app/shared/log/logger';
import type { AppMetrics } from '@app/shared/metrics/metrics';
import { APP_CONFIG, CLOCK, JOURNAL, LOGGER, METRICS, STATE_VIEW } from '@app/shared/nest/tokens';
import { realTimers } from '@app/shared/timers';
import type { GuestConfig } from './config';
import { pollPacing } from './drivers/poll-pacing';
import { GuestApp } from './guest.app';
import { guestMetrics } from './guest-metrics';
import type { VmmPort } from './vmm.port';

@Injectable()
export class GuestService implements BeforeApplicationShutdown {
  private readonly logger: Logger;
  readonly app: GuestApp;

  constructor(
    @Inject(APP_CONFIG) config: GuestConfig,
    @Inject(JOURNAL) journal: Journal,
    @Inject(CLOCK) clock: LamportClock,
    @Inject(LOGGER) log: Logger,
    @Inject(METRICS) metrics: AppMetrics,
    @Inject(STATE_VIEW) state: StateView,
  ) {
    this.logger = log.child({ component: 'guest' });
    const rest = new RestClient({ baseUrl: config.vmmUrl, app: 'guest', clock, token: config.vmToken, peerKey: StackPeerKey.fromAuditToken(config.auditToken) });
    const client: VmmPort = new VmmClient(rest, config.vmId);
    const knob = processStallKnob('vmm', { stallBefore: config.debugStallBefore, traceCalls: config.debugCallTrace });
    const vmm = knob ? knob.wrap(client) : client;
    this.app = new GuestApp({
      journal,
      vmm,
      vmId: config.vmId,
      bootTraceparent: config.bootTraceparent,
      publicUrl: () => config.publicUrl,
      pageRequests: config.pageRequests,
      // Polls are local loads: paced in wall time, whatever the journal's clock (nothing logical waits on them).
      accel: { yield: pollPacing(realTimers) },
      onError: (m) => this.logger.error(m),
      onVmmLost: (reason) => {
        this.logger.error({ reason }, 'lost the VMM: the machine is gone, shutting down');
        process.kill(process.pid, 'SIGTERM');
      },
    });
    guestMetrics(metrics, this.app);
    state.set(() => this.app.status());
  }

  beforeApplicationShutdown(): void {
    this.app.shutdown();
  }
}
