// The Nest side of the guest: builds the one GuestApp over the app's journal with a REST VmmPort, boots it once
// listening (see main.ts), and shuts this process down when the VMM drops it (a guest dies with its QEMU).
import { type BeforeApplicationShutdown, Inject, Injectable, Logger } from '@nestjs/common';
import { StackPeerKey } from '@app/shared/auth/stack-peer';
import type { LamportClock } from '@app/shared/clock';
import { RestClient } from '@app/shared/http/rest-client';
import { VmmClient } from '@app/shared/http/vmm.client';
import type { Journal } from '@app/shared/journal/journal';
import { APP_CONFIG, CLOCK, JOURNAL } from '@app/shared/nest/tokens';
import type { GuestConfig } from './config';
import { GuestApp } from './guest.app';

@Injectable()
export class GuestService implements BeforeApplicationShutdown {
  private readonly logger = new Logger('GuestService');
  readonly app: GuestApp;

  constructor(@Inject(APP_CONFIG) config: GuestConfig, @Inject(JOURNAL) journal: Journal, @Inject(CLOCK) clock: LamportClock) {
    const vmm = new VmmClient(new RestClient({ baseUrl: config.vmmUrl, app: 'guest', clock, token: config.vmToken, peerKey: StackPeerKey.fromAuditToken(config.auditToken) }), config.vmId);
    this.app = new GuestApp({
      journal,
      vmm,
      vmId: config.vmId,
      bootTraceparent: config.bootTraceparent,
      publicUrl: () => config.publicUrl,
      onError: (m) => this.logger.error(m),
      onVmmLost: (reason) => {
        this.logger.error(`lost the VMM (${reason}): the machine is gone, shutting down`);
        process.kill(process.pid, 'SIGTERM');
      },
    });
  }

  beforeApplicationShutdown(): void {
    this.app.shutdown();
  }
}
