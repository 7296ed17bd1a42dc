// The Nest side of a host call's caller: the route's auth follows its operation's permit (one declaration),
// and @Caller() hands the handler the principal the guard authenticated, as a HostCaller.
import { SetMetadata } from '@nestjs/common';
import { AUTH_KIND, principal } from '@app/shared/nest/auth';
import { authKindOf, type HostCaller, type Permit } from './op';

/** The route's bearer-token rule, from the operation it issues. */
export const Authorize = (row: { permit: Permit }): MethodDecorator & ClassDecorator => SetMetadata(AUTH_KIND, authKindOf(row.permit));

export const Caller = principal<HostCaller>((p) =>
  p.isAdmin ? { kind: 'admin' } : p.callerId !== undefined ? { kind: 'process', pid: p.callerId } : { kind: 'anyone' },
);
