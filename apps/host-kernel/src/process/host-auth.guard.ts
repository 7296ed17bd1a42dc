import { type ExecutionContext, Inject, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { timingSafeEqual } from 'node:crypto';
import { AUTH_KIND, type AuthKind, BearerGuard } from '@app/shared/nest/auth';
import { APP_CONFIG } from '@app/shared/nest/tokens';
import type { HostKernelConfig } from '../config';
import { KernelService } from '../kernel.service';

/** Bearer auth of the host kernel: a process token names the calling pid; the admin token is hardware/admin. */
@Injectable()
export class HostAuthGuard extends BearerGuard {
  protected readonly ownParam = 'pid';

  constructor(
    private readonly reflector: Reflector,
    private readonly ks: KernelService,
    @Inject(APP_CONFIG) private readonly config: HostKernelConfig,
  ) {
    super();
  }

  protected kindOf(ctx: ExecutionContext): AuthKind {
    return this.reflector.getAllAndOverride<AuthKind>(AUTH_KIND, [ctx.getHandler(), ctx.getClass()]) ?? 'caller';
  }

  protected callerForToken(token: string): number | undefined {
    return this.ks.kernel.pidForToken(token);
  }

  protected isAdminToken(token: string): boolean {
    const a = Buffer.from(token);
    const b = Buffer.from(this.config.adminToken);
    return a.length === b.length && timingSafeEqual(a, b);
  }
}
