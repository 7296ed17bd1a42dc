// The bearer-token rule every app applies before a call reaches its domain (the REST guard and the in-process
// adapters share it, so a refusal is the same errno whichever door the call came through, and journals nothing):
// 401 EACCES for a missing or unknown token; a route naming the caller's own object (`:pid`, `:id`) that is not
// the caller's is 403 EPERM; admin routes refuse a caller's token with EPERM.
import { createHash, timingSafeEqual } from 'node:crypto';
import { KernelError } from '../errno';

/** Who may call a route: a registered caller (process / VM) by its token, the admin, or anyone. */
export type AuthKind = 'caller' | 'admin' | 'caller-or-admin' | 'none';

export interface TokenAuthority {
  /** Constant-time comparison with the admin token. */
  isAdminToken(token: string): boolean;
  /** The caller's id (pid, VM id) for a token, or undefined if no caller holds it. */
  callerForToken(token: string): number | undefined;
}

export interface Principal {
  /** The caller's id (a pid on the host kernel, a VM id on the VMM); undefined for the admin and for anyone. */
  callerId?: number;
  isAdmin: boolean;
}

/**
 * `own`: the route's parameter naming the caller's own object, and its value in this request (undefined when
 * the route has none).
 */
export function authenticateBearer(kind: AuthKind, token: string | null, authority: TokenAuthority, own?: { param: string; value: unknown }): Principal {
  if (kind === 'none') return { isAdmin: false };
  if (!token) throw new KernelError('EACCES', 'missing bearer token', 401);
  if ((kind === 'admin' || kind === 'caller-or-admin') && authority.isAdminToken(token)) return { isAdmin: true };
  const caller = authority.callerForToken(token);
  if (kind === 'admin') throw new KernelError(caller === undefined ? 'EACCES' : 'EPERM', 'this call needs the admin token', caller === undefined ? 401 : undefined);
  if (caller === undefined) throw new KernelError('EACCES', 'unknown or expired token', 401);
  if (own && own.value !== undefined && String(own.value) !== String(caller)) {
    throw new KernelError('EPERM', `token of ${own.param} ${caller} cannot act on ${own.param} ${String(own.value)}`);
  }
  return { callerId: caller, isAdmin: false };
}

/** Constant-time equality of two tokens of any lengths (their digests are compared, so no length leaks either). */
export function sameToken(given: string, expected: string): boolean {
  return timingSafeEqual(createHash('sha256').update(given).digest(), createHash('sha256').update(expected).digest());
}
