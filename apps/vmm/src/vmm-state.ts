// The VMM at one moment, for the operator (the /ui state view, /v1/audit/state): every VM with its host
// process and fds, and the vIOMMU shadow table of each running one — vPASID → host ioasid (pPASID), the vrids
// allowed on it, stale teardowns. Operator-only: it names pPASIDs, which a guest never sees.
import type { VmView } from './vm/vm-manager';
import type { VmmApp } from './vmm.app';

export interface VmmState {
  vms: Array<
    VmView & {
      host: { pid: number; vmFd: number; ioasidFd: number; gpaIoasid: number } | null;
      shadow: Array<{ vpasid: number; ppasid: number; vrids: number[]; stale: boolean }>;
      /** The guest page request queue: groups waiting for the guest's answer, and overflows since the VM was built. */
      pageRequests: { waiting: number; overflows: number };
    }
  >;
}

export function vmmState(app: VmmApp): VmmState {
  return {
    vms: app.vms.list({ kind: 'admin' }).map((v) => {
      if (v.state !== 'running') return { ...v, host: null, shadow: [], pageRequests: { waiting: 0, overflows: 0 } };
      const vm = app.vms.running(v.id);
      const { pid, vmFd, ioasidFd, gpaIoasid } = vm.handles;
      return {
        ...v,
        host: { pid, vmFd, ioasidFd, gpaIoasid },
        shadow: vm.viommu.bindings().map((b) => ({ vpasid: b.vpasid, ppasid: b.ioasid, vrids: b.vrids, stale: b.teardown !== undefined })),
        pageRequests: { waiting: vm.viommu.pageRequests().length, overflows: vm.viommu.pageRequestOverflows },
      };
    }),
  };
}
