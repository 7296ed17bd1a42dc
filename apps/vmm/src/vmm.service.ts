// The Nest side of the VMM: builds the one VmmApp over the app's journal with a REST HostKernelPort, hands its
// parts to the controllers, rebuilds running VMs after start-up, and lets them die with the VMM on shutdown.
import { type BeforeApplicationShutdown, Injectable, Logger, type OnApplicationBootstrap, type Provider } from '@nestjs/common';
import { StackPeerKey } from '@app/shared/auth/stack-peer';
import type { LamportClock } from '@app/shared/clock';
import { HostKernelClient } from '@app/shared/http/host-kernel.client';
import { RestClient } from '@app/shared/http/rest-client';
import type { Journal } from '@app/shared/journal/journal';
import { APP_CONFIG, CLOCK, JOURNAL } from '@app/shared/nest/tokens';
import type { VmmConfig } from './config';
import { ViommuOps } from './viommu/viommu-ops';
import { withStall } from './vm/debug-stall';
import { VmHardware } from './vm/vm-hardware';
import { VmManager } from './vm/vm-manager';
import { VmmApp } from './vmm.app';

export const VMM_PROVIDERS: Provider[] = [
  {
    provide: VmmApp,
    inject: [APP_CONFIG, JOURNAL, CLOCK],
    useFactory: (config: VmmConfig, journal: Journal, clock: LamportClock) => {
      const logger = new Logger('Vmm');
      const host = withStall(new HostKernelClient(new RestClient({ baseUrl: config.hostKernelUrl, app: 'vmm', clock, peerKey: StackPeerKey.fromAuditToken(config.auditToken) })), config.debugStallBefore);
      return VmmApp.open({ journal, host, adminToken: config.adminToken, pasidQuota: config.pasidQuota, publicUrl: () => config.publicUrl, onError: (m) => logger.error(m) });
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
