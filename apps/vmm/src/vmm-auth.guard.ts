import { Inject, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { BearerGuard } from '@app/shared/nest/auth';
import { APP_CONFIG } from '@app/shared/nest/tokens';
import type { VmmConfig } from './config';
import { VmService } from './vm/vm.service';

/** VM tokens reach only their own VM's virtual hardware (`:id`); the admin token manages VMs. */
@Injectable()
export class VmmAuthGuard extends BearerGuard {
  constructor(reflector: Reflector, private readonly vms: VmService, @Inject(APP_CONFIG) config: VmmConfig) {
    super(reflector, 'id', config.adminToken);
  }

  protected callerForToken(token: string): number | undefined {
    return this.vms.idForToken(token);
  }
}
