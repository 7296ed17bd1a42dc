// The host object graph at one moment (DESIGN §9 time travel, the /ui state view, and the all-or-nothing
// checks of the tests): processes and fds, ioasids with state, refs and holders, device routes, KVM vPASID
// tables, the PASID pool, pinned frames, fault queues and pending page requests. Plain data, in a stable order.
import type { FaultQueueState } from './fault/fault-queue';
import { FaultQueue } from './fault/fault-queue';
import type { RouteInfo } from './iommu/attach-table';
import type { PendingGroupInfo } from './iommu/page-request-queue';
import { IoasidContext } from './ioasid/ioasid-context';
import type { Kernel } from './kernel';
import { KvmVm } from './kvm/kvm-vm';
import type { Memslot } from './kvm/memslots';
import type { PinnedFrames } from './memory/physical-memory';
import type { FdKind } from './process/fd-table';

export interface KernelState {
  processes: {
    pid: number;
    comm: string;
    state: string;
    fds: { fd: number; kind: FdKind }[];
    residentPages: number;
    ia32Pasid: number;
    /** Who created it, and what it uses of what its limits bound (limits/limits.ts). */
    creator: string;
    usage: { pasids: number; pinnedPages: number; fds: number };
  }[];
  /** Open files host-wide (FILE_MAX). */
  openFiles: number;
  pool: { allocated: number; parked: number; free: number };
  ioasids: {
    id: number;
    state: string;
    owner: { pid: number; fd: number };
    refs: number;
    holders: { devices: string[]; kvm: { vmFd: number; vpasid: number }[]; children: number[] };
    pgtbl: { kind: string; id: number; destroyed: boolean } | null;
    /** The iova ioasid a nested one sits on (it holds a child reference there). */
    parent: number | null;
  }[];
  pins: PinnedFrames;
  allocatedFrames: number;
  routes: RouteInfo[];
  /** Each device, who opened it, and the work queued on it (pending: a stalled engine's descriptors). */
  devices: { bdf: string; openedBy: { pid: number; fd: number } | null; queued: number; engineRunning: boolean }[];
  vms: {
    pid: number;
    fd: number;
    memslots: Memslot[];
    vcpus: number;
    /** Each vCPU's IA32_PASID (bit 31 valid, bits 19:0 the vPASID). */
    ia32Pasids: number[];
    translation: boolean;
    pasids: { vpasid: number; ppasid: number; translates: boolean }[];
  }[];
  /** Fault queues of every ioasid fd, and the page request groups the IOMMU holds (every one waits for an answer). */
  faultQueues: ({ pid: number; fd: number } & FaultQueueState)[];
  pageRequests: PendingGroupInfo[];
}

export function kernelState(k: Kernel): KernelState {
  const vms: KernelState['vms'] = [];
  const faultQueues: KernelState['faultQueues'] = [];
  const processes = k.procs.all().map((p) => {
    for (const { fd, kind } of p.fds.list()) {
      if (kind === 'ioasid') {
        for (const q of p.fds.get(fd, 'ioasid', IoasidContext).faultQueues.all()) if (q instanceof FaultQueue) faultQueues.push({ pid: p.pid, fd, ...q.state() });
      }
      if (kind !== 'kvm-vm') continue;
      const vm = p.fds.get(fd, 'kvm-vm', KvmVm);
      const ia32Pasids = Array.from({ length: vm.vcpuCount }, (_, n) => vm.vcpuRdmsr(n, 'IA32_PASID'));
      vms.push({ pid: p.pid, fd, memslots: vm.memslots.list(), vcpus: vm.vcpuCount, ia32Pasids, translation: vm.pasidTranslation, pasids: vm.pasidMappings() });
    }
    return {
      pid: p.pid,
      comm: p.comm,
      state: p.state,
      fds: p.fds.list(),
      residentPages: p.mm.residentPages,
      ia32Pasid: p.ia32Pasid,
      creator: p.creator,
      usage: { pasids: k.ioasids.ownedBy(p.pid), pinnedPages: p.mm.pinnedPages, fds: p.fds.count },
    };
  });
  return {
    processes,
    openFiles: k.procs.files.count,
    pool: k.ioasids.pasidPool(),
    ioasids: k.ioasids.all().map((i) => ({
      id: i.id,
      state: i.state,
      owner: { pid: i.owner.pid, fd: i.owner.fd },
      refs: i.refs,
      holders: i.describeHolders(),
      pgtbl: i.pgtbl && { kind: i.pgtbl.kind, id: i.pgtbl.id, destroyed: i.pgtbl.destroyed },
      parent: i.parent?.id ?? null,
    })),
    pins: k.memory.pinnedFrames(),
    allocatedFrames: k.memory.allocatedFrames,
    routes: k.iommu.table.routes(),
    devices: k.vfio.all().map((d) => ({
      bdf: d.bdf,
      openedBy: d.openedBy && { ...d.openedBy },
      queued: k.accelerators.accelerator(d.bdf).stats.queued,
      engineRunning: k.accelerators.engineRunning(d.bdf),
    })),
    vms,
    faultQueues,
    pageRequests: k.iommu.prq.pendingGroups(),
  };
}
