import { type CanActivate, createParamDecorator, type ExecutionContext, SetMetadata } from '@nestjs/common';
import type { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { authenticateBearer, sameToken, type AuthKind } from '../auth/bearer';

export type { AuthKind } from '../auth/bearer';
export const AUTH_KIND = 'auth-kind';
export const Auth = (kind: AuthKind): MethodDecorator & ClassDecorator => SetMetadata(AUTH_KIND, kind);

export interface AuthenticatedRequest extends Request {
  /** The caller's id (a pid on the host kernel, a VM id on the VMM); undefined for the admin. */
  callerId?: number;
  isAdmin?: boolean;
}

export function bearer(req: Request): string | null {
  const h = req.header('authorization');
  const m = h ? /^Bearer\s+(\S+)$/i.exec(h) : null;
  return m ? m[1] : null;
}

export const CallerId = createParamDecorator((_data: unknown, ctx: ExecutionContext): number | undefined => {
  return ctx.switchToHttp().getRequest<AuthenticatedRequest>().callerId;
});

/** A parameter decorator giving the request's principal (as the guard found it) in an app's own terms. */
export function principal<T>(map: (p: { callerId?: number; isAdmin: boolean }) => T): () => ParameterDecorator {
  return createParamDecorator((_data: unknown, ctx: ExecutionContext): T => {
    const req = ctx.switchToHttp().getRequest<AuthenticatedRequest>();
    return map({ callerId: req.callerId, isAdmin: req.isAdmin === true });
  });
}

/**
 * The shared bearer-token guard: 401 (EACCES) for a missing or unknown token; a route naming
 * `:param` (the pid / VM id) that is not the caller's own is 403 EPERM.
 */
export abstract class BearerGuard implements CanActivate {
  /** The caller's id (pid, VM id) for a token, or undefined if no caller holds it. */
  protected abstract callerForToken(token: string): number | undefined;

  /**
   * @param ownParam the route parameter naming the caller's own object (`pid`, `id`)
   * @param adminToken the app's admin token
   */
  constructor(
    private readonly reflector: Reflector,
    private readonly ownParam: string,
    private readonly adminToken: string,
  ) {}

  private kindOf(ctx: ExecutionContext): AuthKind {
    return this.reflector.getAllAndOverride<AuthKind>(AUTH_KIND, [ctx.getHandler(), ctx.getClass()]) ?? 'caller';
  }

  private isAdminToken(token: string): boolean {
    return sameToken(token, this.adminToken);
  }

  canActivate(ctx: ExecutionContext): boolean {
    const req = ctx.switchToHttp().getRequest<AuthenticatedRequest>();
    const p = authenticateBearer(
      this.kindOf(ctx),
      bearer(req),
      { isAdminToken: (t) => this.isAdminToken(t), callerForToken: (t) => this.callerForToken(t) },
      { param: this.ownParam, value: req.params?.[this.ownParam] },
    );
    req.isAdmin = p.isAdmin;
    req.callerId = p.callerId;
    return true;
  }
}
