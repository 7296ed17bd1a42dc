import 'reflect-metadata';
import { bootstrap, runMain } from '@app/shared/nest/bootstrap';
import { AppModule } from './app.module';
import { loadConfig } from './config';
import { HostKernelApp } from './host-kernel.app';

runMain('host-kernel', async () => {
  const config = loadConfig(process.env);
  await bootstrap({
    config,
    principal: 'pid',
    module: AppModule.forRoot(config),
    title: 'ioasid-lab host kernel',
    description:
      'The simulated host kernel: processes and fd tables, /dev/ioasid, VFIO, KVM, the IOMMU and PCI accelerators (DESIGN §2, §5).',
    inputs: (app) => {
      const core = app.get(HostKernelApp);
      return { principalOf: (token) => core.principalOf(token) };
    },
    onListening: () => {
      if (config.adminTokenGenerated) process.stdout.write(`ADMIN_TOKEN ${config.adminToken}\n`);
    },
  });
});
