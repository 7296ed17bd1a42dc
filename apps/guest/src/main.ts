import 'reflect-metadata';
import { bootstrap, runMain } from '@app/shared/nest/bootstrap';
import { AppModule } from './app.module';
import { loadConfig } from './config';
import { GuestService } from './guest.service';

runMain('guest', async () => {
  const config = loadConfig(process.env);
  await bootstrap({
    config,
    module: AppModule.forRoot(config),
    title: 'ioasid-lab guest OS',
    description: 'A guest OS: processes with x86-64 page tables in guest memory, a vIOMMU SVA driver and an accelerator driver (DESIGN §3, §5).',
    // The guest's console has no token: an operator request names no principal.
    inputs: () => ({ vm: config.vmId, principalOf: () => 'none' }),
    // Boot before READY: a guest that cannot reach its VMM does not claim to be up.
    onListening: (app) => app.get(GuestService).app.boot(),
  });
});
