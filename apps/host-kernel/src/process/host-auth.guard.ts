import { Inject, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { BearerGuard } from '@app/shared/nest/auth';
import { APP_CONFIG } from '@app/shared/nest/tokens';
import type { HostKernelConfig } from '../config';
import { KernelService } from '../kernel.service';

/** Bearer auth of the host kernel: a process token names the calling pid (`:pid` must be its own); the admin token is hardware/admin. */
@Injectable()
export class HostAuthGuard extends BearerGuard {
  constructor(reflector: Reflector, private readonly ks: KernelService, @Inject(APP_CONFIG) config: HostKernelConfig) {
    super(reflector, 'pid', config.adminToken);
  }

  protected callerForToken(token: string): number | undefined {
    return this.ks.kernel.pidForToken(token);
  }
}
