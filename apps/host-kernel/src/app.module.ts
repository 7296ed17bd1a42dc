import { type DynamicModule, Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { CoreModule } from '@app/shared/nest/core.module';
import { PasidAccessController } from './audit/pasid-access.controller';
import type { HostKernelConfig } from './config';
import { CpuController } from './cpu/cpu.controller';
import { FaultController } from './fault/fault.controller';
import { HwController } from './hw/hw.controller';
import { IoasidController } from './ioasid/ioasid.controller';
import { HOST_KERNEL_PROVIDERS, KernelShutdown } from './kernel.service';
import { KvmController } from './kvm/kvm.controller';
import { PROCESS_MIGRATIONS, ProcessEntity } from './persistence/process.entity';
import { HostAuthGuard } from './host-auth.guard';
import { ProcessController } from './process/process.controller';
import { VfioController } from './vfio/vfio.controller';

@Module({})
export class AppModule {
  static forRoot(config: HostKernelConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [CoreModule.forRoot({ config, entities: [ProcessEntity], migrations: PROCESS_MIGRATIONS })],
      controllers: [ProcessController, CpuController, IoasidController, FaultController, VfioController, KvmController, HwController, PasidAccessController],
      providers: [...HOST_KERNEL_PROVIDERS, KernelShutdown, { provide: APP_GUARD, useClass: HostAuthGuard }],
    };
  }
}
