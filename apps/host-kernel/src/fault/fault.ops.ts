// Fault queue calls (DESIGN §10; the iommufd FAULT object, drivers/iommu/iommufd/eventq.c): allocate a queue on an
// ioasid fd, destroy it (EBUSY while a page table uses it), read its groups (cookies assigned as they are read),
// answer a group by cookie. BIND_PGTBL {kind:"nested", faultQueue} is what sends a table's page requests here.
import { KernelError } from '@app/shared/errno';
import { fdArg, type OpCall, opsFor } from '../dispatch/op';
import type { Iommu } from '../iommu/iommu';
import { IoasidContext } from '../ioasid/ioasid-context';
import type { PageResponseCode } from '../ioasid/pgtbl';
import type { KernelFile } from '../process/fd-table';
import type { Process } from '../process/process';
import { FaultQueue, type FaultGroupView } from './fault-queue';

interface Deps {
  iommu: Iommu;
}

const op = opsFor<Deps, Process>();
type C<F extends KernelFile = never> = OpCall<Deps, F, Process>;
const ioasidFd = fdArg('fd', 'ioasid', IoasidContext);
const named = (a: { fd: number; faultQueue: number }, _r: unknown, caller: { kind: string; pid?: number }): string =>
  `fault-queue:${caller.kind === 'process' ? caller.pid : '?'}/${a.fd}/${a.faultQueue}`;

/** Response codes userspace may send (iommufd IOMMUFD_PAGE_RESP_SUCCESS/INVALID); anything else would be PCIe Response Failure. */
const USER_CODES: readonly PageResponseCode[] = ['success', 'invalid'];

/** A fault queue of this ioasid fd (a typed lookup: ENOENT for an unknown id, as for any iommufd object). */
function queueOf(file: IoasidContext, id: number): FaultQueue {
  const queue = file.faultQueues.lookup(id);
  if (!(queue instanceof FaultQueue)) throw new KernelError('ENOENT', `object ${id} of ioasid fd ${file.fd} is not a fault queue`);
  return queue;
}

export const faultOps = {
  /** IOMMU_FAULT_QUEUE_ALLOC: a new, empty fault queue owned by this ioasid fd. */
  alloc: op({
    name: 'fault.alloc',
    permit: 'process',
    journal: true,
    fd: ioasidFd,
    run: ({ k, proc, file, tx }: C<IoasidContext>, _a: { fd: number }) => {
      const id = file.faultQueues.nextId();
      file.faultQueues.insert(tx, new FaultQueue(id, proc.pid, file.fd, (queue) => void k.iommu.prq.answerHandler(queue)));
      return { faultQueue: id };
    },
    object: (a, r, caller) => (r ? named({ fd: a.fd, faultQueue: r.faultQueue }, r, caller) : null),
  }),

  /** IOMMU_DESTROY of the queue: EBUSY while a page table uses it; whatever it still holds is answered invalid. */
  destroy: op({
    name: 'fault.destroy',
    permit: 'process',
    journal: true,
    fd: ioasidFd,
    run: ({ file, tx }: C<IoasidContext>, a: { fd: number; faultQueue: number }) => {
      queueOf(file, a.faultQueue);
      file.faultQueues.destroy(tx, a.faultQueue);
    },
    object: named,
  }),

  /** read() of the fault fd: every unread group, whole, each given its response cookie now. */
  read: op({
    name: 'fault.read',
    permit: 'process',
    journal: true,
    fd: ioasidFd,
    run: ({ file, tx }: C<IoasidContext>, a: { fd: number; faultQueue: number }): FaultGroupView[] => queueOf(file, a.faultQueue).read(tx),
    object: named,
  }),

  /**
   * write() of the fault fd: the response to the group a cookie names. A code other than success/invalid is EINVAL
   * and changes nothing (the group stays pending); an unknown or already used cookie is EINVAL. The device gets
   * the answer once the row is written.
   */
  respond: op({
    name: 'fault.respond',
    permit: 'process',
    journal: true,
    fd: ioasidFd,
    run: ({ k, proc, file, tx }: C<IoasidContext>, a: { fd: number; faultQueue: number; cookie: number; code: PageResponseCode }) => {
      const queue = queueOf(file, a.faultQueue);
      if (!USER_CODES.includes(a.code)) throw new KernelError('EINVAL', `page response code must be "success" or "invalid", not ${JSON.stringify(a.code)}`);
      const group = queue.take(tx, a.cookie);
      const by = `pid:${proc.pid}`;
      tx.emit({ kind: 'page-response', pid: proc.pid, seq: group.seq, bdf: group.bdf, ppasid: group.ppasid, grpid: group.grpid, code: a.code, by, reason: 'response' });
      tx.defer(() => void k.iommu.prq.answer(group.seq, a.code, by, 'response', false));
    },
    object: named,
  }),
};
