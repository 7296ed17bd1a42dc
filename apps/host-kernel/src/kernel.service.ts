// The Nest side of the host kernel: builds the one HostKernelApp over the app's journal and hands its parts
// to the controllers (the dispatcher, the process lifelines); a clean shutdown kills every process first.
import { type BeforeApplicationShutdown, Injectable, Logger, type Provider } from '@nestjs/common';
import type { Journal } from '@app/shared/journal/journal';
import { APP_CONFIG, JOURNAL } from '@app/shared/nest/tokens';
import type { HostKernelConfig } from './config';
import { Dispatcher } from './dispatch/dispatcher';
import { HostKernelApp } from './host-kernel.app';
import { PROCESS_LIFELINES } from './process/lifelines';

export const HOST_KERNEL_PROVIDERS: Provider[] = [
  {
    provide: HostKernelApp,
    inject: [APP_CONFIG, JOURNAL],
    useFactory: (config: HostKernelConfig, journal: Journal) => {
      const logger = new Logger('HostKernel');
      return HostKernelApp.open({ memoryMiB: config.memoryMiB, devices: config.devices, limits: config.limits, adminToken: config.adminToken, journal, onError: (m) => logger.error(m) });
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
