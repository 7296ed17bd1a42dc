import { type DynamicModule, Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { CoreModule } from '@app/shared/nest/core.module';
import type { VmmConfig } from './config';
import { VM_MIGRATIONS, VmEntity } from './persistence/vm.entity';
import { ViommuController } from './viommu/viommu.controller';
import { VmController } from './vm/vm.controller';
import { VmmAuthGuard } from './vmm-auth.guard';
import { VMM_PROVIDERS, VmmLifecycle } from './vmm.service';

@Module({})
export class AppModule {
  static forRoot(config: VmmConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [CoreModule.forRoot({ config, entities: [VmEntity], migrations: VM_MIGRATIONS })],
      controllers: [VmController, ViommuController],
      providers: [...VMM_PROVIDERS, VmmLifecycle, { provide: APP_GUARD, useClass: VmmAuthGuard }],
    };
  }
}
