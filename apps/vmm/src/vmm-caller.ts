// Who calls the VMM: a guest (by its VM token), the VMM admin (management), or nobody. Guest-facing calls
// reach only the caller's own VM; management needs the admin token.
import { KernelError } from '@app/shared/errno';

export type VmmCaller = { kind: 'vm'; id: number } | { kind: 'admin' } | { kind: 'anyone' };

/** The call is on VM `id`'s virtual hardware: only that VM's own token (EPERM otherwise; EACCES without one). */
export function requireVm(caller: VmmCaller, id: number, admin = false): void {
  if (caller.kind === 'vm' && caller.id === id) return;
  if (admin && caller.kind === 'admin') return;
  if (caller.kind === 'anyone') throw new KernelError('EACCES', 'missing bearer token', 401);
  throw new KernelError('EPERM', caller.kind === 'vm' ? `token of vm ${caller.id} cannot act on vm ${id}` : 'a guest-facing call needs the VM token');
}

export function requireAdmin(caller: VmmCaller): void {
  if (caller.kind === 'admin') return;
  if (caller.kind === 'anyone') throw new KernelError('EACCES', 'missing bearer token', 401);
  throw new KernelError('EPERM', 'this call needs the admin token');
}
