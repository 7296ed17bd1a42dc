import { type DynamicModule, Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { CoreModule } from '@app/shared/nest/core.module';
import type { VmmConfig } from './config';
import { CreateVm1764000000002, VmEntity } from './persistence/vm.entity';
import { ViommuController } from './viommu/viommu.controller';
import { VmController } from './vm/vm.controller';
import { VmService } from './vm/vm.service';
import { VmmAuthGuard } from './vmm-auth.guard';

@Module({})
export class AppModule {
  static forRoot(config: VmmConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [CoreModule.forRoot({ config, entities: [VmEntity], migrations: [CreateVm1764000000002] })],
      controllers: [VmController, ViommuController],
      providers: [VmService, { provide: APP_GUARD, useClass: VmmAuthGuard }],
    };
  }
}
