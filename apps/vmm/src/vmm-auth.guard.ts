import { Inject, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { BearerGuard } from '@app/shared/nest/auth';
import { APP_CONFIG } from '@app/shared/nest/tokens';
import type { VmmConfig } from './config';
import { VmManager } from './vm/vm-manager';

/** VM tokens reach only their own VM's virtual hardware (`:id`); the admin token manages VMs. */
@Injectable()
export class VmmAuthGuard extends BearerGuard {
  constructor(reflector: Reflector, private readonly vms: VmManager, @Inject(APP_CONFIG) config: VmmConfig) {
    super(reflector, 'id', config.adminToken);
  }

  protected callerForToken(token: string): number | undefined {
    return this.vms.idForToken(token);
  }
}
