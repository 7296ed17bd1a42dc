import { Inject, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { BearerGuard } from '@app/shared/nest/auth';
import { APP_CONFIG } from '@app/shared/nest/tokens';
import type { HostKernelConfig } from './config';
import { HostKernelApp } from './host-kernel.app';

/** Bearer auth of the host kernel: a process token names the calling pid (`:pid` must be its own); the admin token is hardware/admin. */
@Injectable()
export class HostAuthGuard extends BearerGuard {
  constructor(reflector: Reflector, private readonly host: HostKernelApp, @Inject(APP_CONFIG) config: HostKernelConfig) {
    super(reflector, 'pid', config.adminToken);
  }

  protected callerForToken(token: string): number | undefined {
    return this.host.kernel.procs.pidForToken(token);
  }
}
