// /dev/ioasid calls (DESIGN §2, §5): open, ALLOC, BIND_PGTBL, MAP/UNMAP, INVALIDATE, DESTROY, and the reads.

import { KernelError } from '@app/shared/errno';
import { fdArg, type OpCall, opsFor } from '../dispatch/op';
import type { KernelFile } from '../process/fd-table';
import type { Process } from '../process/process';
import type { IoasidState } from './ioasid';
import { IoasidContext, type IoasidInfo } from './ioasid-context';
import type { IoasidLayer } from './ioasid-layer';
import type { BindSpec } from './pgtbl';

interface Deps {
  ioasids: IoasidLayer;
}

const op = opsFor<Deps, Process>();
type C<F extends KernelFile = never> = OpCall<Deps, F, Process>;
const ioasidFd = fdArg('fd', 'ioasid', IoasidContext);
const named = (a: { ioasid: number }): string => `ioasid:${a.ioasid}`;

export interface BindArgs {
  fd: number;
  ioasid: number;
  kind: BindSpec['kind'];
  parent?: number;
  root?: number | null;
  faultQueue?: number;
}

/**
 * The page-table spec of a BIND_PGTBL; `parent`, `root` and `faultQueue` belong to kind nested only (EINVAL
 * otherwise). An absent root is pass-through to the parent's space; `root: null` is not absent (EINVAL, on both doors).
 */
function bindSpec(a: BindArgs): BindSpec {
  if (a.root === null) throw new KernelError('EINVAL', 'root must be a GPA; leave it out for pass-through');
  if (a.kind === 'nested') {
    return { kind: 'nested', parent: a.parent as number, ...(a.root === undefined ? {} : { root: a.root }), ...(a.faultQueue === undefined ? {} : { faultQueue: a.faultQueue }) };
  }
  if (a.parent !== undefined || a.root !== undefined || a.faultQueue !== undefined) {
    throw new KernelError('EINVAL', `parent, root and faultQueue are only for kind "nested", not "${String(a.kind)}"`);
  }
  return { kind: a.kind } as BindSpec;
}

export const ioasidOps = {
  /** open("/dev/ioasid"): a context for many ioasids. */
  open: op({
    name: 'ioasid.open',
    permit: 'process',
    journal: true,
    run: ({ k, proc, tx }: C, _a: Record<string, never>) => {
      const ctxId = k.ioasids.newContextId(tx);
      return { fd: proc.fds.install(tx, (fd) => new IoasidContext(k.ioasids, ctxId, proc.pid, fd, proc.mm)).fd };
    },
    object: (_a, r, caller) => (r && caller.kind === 'process' ? `fd:${caller.pid}/${r.fd}` : null),
  }),

  /** ALLOC: a new ioasid whose id is a host PASID from the global pool, owned by this fd. */
  alloc: op({
    name: 'ioasid.alloc',
    permit: 'process',
    journal: true,
    fd: ioasidFd,
    run: ({ file, tx }: C<IoasidContext>, _a: { fd: number }) => ({ ioasid: file.alloc(tx) }),
    object: (_a, r) => (r ? `ioasid:${r.ioasid}` : null),
  }),

  list: op({
    name: 'ioasid.list',
    permit: 'process',
    journal: false,
    fd: ioasidFd,
    run: ({ file }: C<IoasidContext>, _a: { fd: number }): { ioasid: number; state: IoasidState }[] => file.list(),
  }),

  /** State, page-table kind, refcount and holders by kind. */
  info: op({
    name: 'ioasid.info',
    permit: 'process',
    journal: false,
    fd: ioasidFd,
    run: ({ file }: C<IoasidContext>, a: { fd: number; ioasid: number }): IoasidInfo => file.info(a.ioasid),
  }),

  /** BIND_PGTBL: give the ioasid its page table (mm, iova, or nested over an iova parent). */
  bindPgtbl: op({
    name: 'ioasid.bind_pgtbl',
    permit: 'process',
    journal: true,
    fd: ioasidFd,
    run: ({ file, tx }: C<IoasidContext>, a: BindArgs) => file.bind(tx, a.ioasid, bindSpec(a)),
    object: named,
  }),

  /** MAP (iommufd IOAS_MAP rules): page aligned, no overlap, pins the frames behind the hva. */
  map: op({
    name: 'ioasid.map',
    permit: 'process',
    journal: true,
    fd: ioasidFd,
    run: ({ file, tx }: C<IoasidContext>, a: { fd: number; ioasid: number; iova: number; hva: number; length: number; read: boolean; write: boolean }) => ({
      iova: file.map(tx, a.ioasid, a),
    }),
    object: named,
  }),

  /** UNMAP whole areas only (a partial area is ENOENT); `{all:true}` unmaps everything. */
  unmap: op({
    name: 'ioasid.unmap',
    permit: 'process',
    journal: true,
    fd: ioasidFd,
    run: ({ file, tx }: C<IoasidContext>, a: { fd: number; ioasid: number; iova?: number; length?: number; all?: true }) => ({
      unmapped: file.unmap(tx, a.ioasid, a.all !== undefined ? { all: a.all } : { iova: a.iova as number, length: a.length as number }),
    }),
    object: named,
  }),

  /** Flush the IOTLB for this ioasid (all, or a range): a changed guest table is seen only after this. */
  invalidate: op({
    name: 'ioasid.invalidate',
    permit: 'process',
    journal: true,
    fd: ioasidFd,
    run: ({ file }: C<IoasidContext>, a: { fd: number; ioasid: number; iova?: number; length?: number }) =>
      file.invalidate(a.ioasid, a.length === undefined && a.iova === undefined ? undefined : { iova: a.iova as number, length: a.length as number }),
    object: named,
  }),

  /** DESTROY: wipe, block every route, park the PASID until its last holder lets go. */
  destroy: op({
    name: 'ioasid.destroy',
    permit: 'process',
    journal: true,
    fd: ioasidFd,
    run: ({ file, tx }: C<IoasidContext>, a: { fd: number; ioasid: number }) => file.destroy(tx, a.ioasid),
    object: named,
  }),
};
