import { type DynamicModule, Module } from '@nestjs/common';
import { CoreModule } from '@app/shared/nest/core.module';
import type { GuestConfig } from './config';
import { SubmitController } from './drivers/submit.controller';
import { GuestService } from './guest.service';
import { SvaController } from './iommu/sva.controller';
import { ProcessController } from './mm/process.controller';
import { StatusController } from './status.controller';

@Module({})
export class AppModule {
  static forRoot(config: GuestConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [CoreModule.forRoot({ config })],
      controllers: [StatusController, ProcessController, SvaController, SubmitController],
      providers: [GuestService],
    };
  }
}
