// The Nest side of the host kernel: builds the one HostKernelApp over the app's journal and hands its parts
// to the controllers (the dispatcher, the process lifelines); a clean shutdown kills every process first.
import { type BeforeApplicationShutdown, Injectable, type Provider } from '@nestjs/common';
import type { StateView } from '@app/shared/audit/state-view';
import type { Journal } from '@app/shared/journal/journal';
import type { Logger } from '@app/shared/log/logger';
import type { AppMetrics } from '@app/shared/metrics/metrics';
import { APP_CONFIG, JOURNAL, LOGGER, METRICS, STATE_VIEW } from '@app/shared/nest/tokens';
import { timersFor } from '@app/shared/timers';
import { shmFiles, sweepShmOrphans } from '@app/shared/memory/shm-files';
import type { HostKernelConfig } from './config';
import { Dispatcher } from './dispatch/dispatcher';
import { HostKernelApp } from './host-kernel.app';
import { hostMetrics } from './host-metrics';
import { kernelState } from './kernel-state';
import { PROCESS_LIFELINES } from './process/lifelines';

export const HOST_KERNEL_PROVIDERS: Provider[] = [
  {
    provide: HostKernelApp,
    inject: [APP_CONFIG, JOURNAL, LOGGER, METRICS, STATE_VIEW],
    useFactory: async (config: HostKernelConfig, journal: Journal, log: Logger, metrics: AppMetrics, state: StateView) => {
      const logger = log.child({ component: 'kernel' });
      // A reboot: memory files a crashed host kernel left in /dev/shm go, as its RAM would.
      const swept = sweepShmOrphans();
      if (swept.length > 0) logger.info({ swept: swept.length }, 'removed memory files of host kernels no longer running');
      const app = await HostKernelApp.open({
        memoryMiB: config.memoryMiB,
        devices: config.devices,
        limits: config.limits,
        // Guest RAM is shared by mapping with the VMM and guest processes: POSIX shared memory files.
        memFiles: shmFiles,
        prqDepth: config.prqDepth,
        prqTimeoutMs: config.prqTimeoutMs,
        adminToken: config.adminToken,
        journal,
        seed: config.seed,
        timers: timersFor(config.seed, journal.clock),
        onError: (m) => logger.error(m),
      });
      hostMetrics(metrics, app.kernel);
      state.set(() => kernelState(app.kernel));
      return app;
    },
  },
  { provide: Dispatcher, inject: [HostKernelApp], useFactory: (app: HostKernelApp) => app.dispatcher },
  { provide: PROCESS_LIFELINES, useExisting: HostKernelApp },
];

@Injectable()
export class KernelShutdown implements BeforeApplicationShutdown {
  constructor(private readonly app: HostKernelApp) {}

  beforeApplicationShutdown(): Promise<void> {
    return this.app.shutdown();
  }
}
