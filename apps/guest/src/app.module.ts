import { type DynamicModule, Module } from '@nestjs/common';
import { CoreModule } from '@app/shared/nest/core.module';
import type { GuestConfig } from './config';
import { SubmitController } from './console/submit.controller';
import { GuestService } from './guest.service';
import { SvaController } from './console/sva.controller';
import { ProcessController } from './console/process.controller';
import { StatusController } from './console/status.controller';

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
