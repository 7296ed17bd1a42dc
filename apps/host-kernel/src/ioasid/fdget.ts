// The one way VFIO and KVM reach an ioasid (cf. eventfd_ctx_fdget, and iommufd_get_object): the fd must be an
// ioasid fd of the caller (EBADF) and the ioasid must belong to it and be visible (ENOENT). What they get is a
// reference handle: id, state, page table, and taking or dropping a holder — never the ioasid itself.
import { KernelError } from '@app/shared/errno';
import type { Tx } from '../fault-injection';
import type { FdTable } from '../process/fd-table';
import type { Holder, Ioasid, IoasidState } from './ioasid';
import { IoasidContext } from './ioasid-context';
import type { IoasidLayer } from './ioasid-layer';
import type { PageTableHandle } from './pgtbl';

export class IoasidRef {
  constructor(
    private readonly layer: IoasidLayer,
    private readonly ioasid: Ioasid,
  ) {}

  get ppasid(): number {
    return this.ioasid.id;
  }

  get state(): IoasidState {
    return this.ioasid.state;
  }

  get pgtbl(): PageTableHandle | null {
    return this.ioasid.pgtbl;
  }

  /** Allowed on at least one device (KVM MAP_PASID requires it). */
  get allowedOnDevice(): boolean {
    return this.ioasid.hasHolder('device');
  }

  hold(tx: Tx, holder: Holder): void {
    this.layer.hold(tx, this.ioasid, holder);
  }

  release(tx: Tx, holderKey: string): void {
    this.layer.put(tx, this.ioasid, holderKey);
  }
}

/**
 * fd must be an ioasid fd of `fds` (EBADF); the ioasid must belong to it (ENOENT). `parked` also finds a
 * destroyed ioasid of that fd, for the calls that let go of one (disallow).
 */
export function fdget(layer: IoasidLayer, fds: FdTable, fd: number, ioasid: number, opts: { parked?: boolean } = {}): IoasidRef {
  const ctx = fds.get(fd, 'ioasid', IoasidContext);
  let found = ctx.ioasids.get(ioasid);
  if (!found && opts.parked) {
    const parked = layer.get(ioasid);
    if (parked && parked.state === 'destroyed' && parked.owner.ctxId === ctx.ctxId) found = parked;
  }
  if (!found) throw new KernelError('ENOENT', `ioasid ${ioasid} does not exist in ioasid fd ${fd}`);
  return new IoasidRef(layer, found);
}

/** fdget, but an unknown ioasid is null instead of ENOENT (a bad fd is still EBADF). */
export function fdgetOrNull(layer: IoasidLayer, fds: FdTable, fd: number, ioasid: number, opts: { parked?: boolean } = {}): IoasidRef | null {
  try {
    return fdget(layer, fds, fd, ioasid, opts);
  } catch (err) {
    if (err instanceof KernelError && err.errno === 'ENOENT') return null;
    throw err;
  }
}
