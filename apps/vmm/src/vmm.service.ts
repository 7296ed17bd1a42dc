// The Nest side of the VMM: builds the one VmmApp over the app's journal with a REST HostKernelPort, hands its
// parts to the controllers, rebuilds running VMs after start-up, and lets them die with the VMM on shutdown.
import { type BeforeApplicationShutdown, Injectable, type OnApplicationBootstrap, type Provider } from '@nestjs/common';
import type { StateView } from '@app/shared/audit/state-view';
import { StackPeerKey } from '@app/shared/auth/stack-peer';
import type { LamportClock } from '@app/shared/clock';
import { HostKernelClient } from '@app/shared/http/host-kernel.client';
import { RestClient } from '@app/shared/http/rest-client';
import type { Journal } from '@app/shared/journal/journal';
import type { Logger } from '@app/shared/log/logger';
import type { AppMetrics } from '@app/shared/metrics/metrics';
import { APP_CONFIG, CLOCK, JOURNAL, LOGGER, METRICS, STATE_VIEW } from '@app/shared/nest/tokens';
import type { VmmConfig } from './config';
import { ViommuOps } from './viommu/viommu-ops';
import { processStallKnob } from '@app/shared/debug/stall-knob';
import { withKnob } from './vm/debug-stall';
import { VmHardware } from './vm/vm-hardware';
import { VmManager } from './vm/vm-manager';
import { VmmApp } from './vmm.app';
import { vmmMetrics } from './vmm-metrics';
import { vmmState } from './vmm-state';

export const VMM_PROVIDERS: Provider[] = [
  {
    provide: VmmApp,
    inject: [APP_CONFIG, JOURNAL, CLOCK, LOGGER, METRICS, STATE_VIEW],
    useFactory: async (config: VmmConfig, journal: Journal, clock: LamportClock, log: Logger, metrics: AppMetrics, state: StateView) => {
      const logger = log.child({ component: 'vmm' });
      const rest = new RestClient({ baseUrl: config.hostKernelUrl, app: 'vmm', clock, peerKey: StackPeerKey.fromAuditToken(config.auditToken) });
      const host = withKnob(new HostKernelClient(rest), processStallKnob('host', { stallBefore: config.debugStallBefore, traceCalls: config.debugCallTrace }));
      const app = await VmmApp.open({ journal, host, adminToken: config.adminToken, pasidQuota: config.pasidQuota, seed: config.seed, publicUrl: () => config.publicUrl, onError: (m) => logger.error(m) });
      vmmMetrics(metrics, app);
      state.set(() => vmmState(app));
      return app;
    },
  },
  { provide: VmManager, inject: [VmmApp], useFactory: (app: VmmApp) => app.vms },
  { provide: VmHardware, inject: [VmmApp], useFactory: (app: VmmApp) => app.hardware },
  { provide: ViommuOps, inject: [VmmApp], useFactory: (app: VmmApp) => app.viommu },
];

@Injectable()
export class VmmLifecycle implements OnApplicationBootstrap, BeforeApplicationShutdown {
  constructor(private readonly app: VmmApp) {}

  /** After a restart, rebuild the host side of every VM that was running, in the background. */
  onApplicationBootstrap(): void {
    void this.app.vms.restoreAll();
  }

  beforeApplicationShutdown(): void {
    this.app.vms.shutdown();
  }
}
