import { type ExecutionContext, Inject, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { timingSafeEqual } from 'node:crypto';
import { AUTH_KIND, type AuthKind, BearerGuard } from '@app/shared/nest/auth';
import { APP_CONFIG } from '@app/shared/nest/tokens';
import type { VmmConfig } from './config';
import { VmService } from './vm/vm.service';

/** VM tokens reach only their own VM's virtual hardware (`:id`); the admin token manages VMs. */
@Injectable()
export class VmmAuthGuard extends BearerGuard {
  protected readonly ownParam = 'id';

  constructor(
    private readonly reflector: Reflector,
    private readonly vms: VmService,
    @Inject(APP_CONFIG) private readonly config: VmmConfig,
  ) {
    super();
  }

  protected kindOf(ctx: ExecutionContext): AuthKind {
    return this.reflector.getAllAndOverride<AuthKind>(AUTH_KIND, [ctx.getHandler(), ctx.getClass()]) ?? 'caller';
  }

  protected callerForToken(token: string): number | undefined {
    return this.vms.idForToken(token);
  }

  protected isAdminToken(token: string): boolean {
    const a = Buffer.from(token);
    const b = Buffer.from(this.config.adminToken);
    return a.length === b.length && timingSafeEqual(a, b);
  }
}
