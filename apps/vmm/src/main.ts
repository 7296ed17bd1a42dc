import 'reflect-metadata';
import { bootstrap, runMain } from '@app/shared/nest/bootstrap';
import { AppModule } from './app.module';
import { loadConfig } from './config';
import { VmmApp } from './vmm.app';

runMain('vmm', async () => {
  const config = loadConfig(process.env);
  await bootstrap({
    config,
    principal: 'vm',
    module: AppModule.forRoot(config),
    title: 'ioasid-lab VMM',
    description: 'The VMM: VMs as host processes, and the virtual hardware guests see — memory, vCPUs, a scalable-mode vIOMMU (DESIGN §3, §5).',
    inputs: (app) => {
      const core = app.get(VmmApp);
      return { principalOf: (token) => core.principalOf(token) };
    },
    onListening: () => {
      if (config.adminTokenGenerated) process.stdout.write(`ADMIN_TOKEN ${config.adminToken}\n`);
    },
  });
});
