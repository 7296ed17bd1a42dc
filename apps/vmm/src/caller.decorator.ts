import { principal } from '@app/shared/nest/auth';
import type { VmmCaller } from './vmm-caller';

/** The authenticated caller of a VMM route. */
export const Caller = principal<VmmCaller>((p) => (p.isAdmin ? { kind: 'admin' } : p.callerId !== undefined ? { kind: 'vm', id: p.callerId } : { kind: 'anyone' }));
