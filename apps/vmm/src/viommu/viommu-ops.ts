// The guest-facing calls of a VM's scalable-mode vIOMMU (DESIGN §3): PASID directory registration (the context
// entry), the invalidation queue, the fault log and the page-request queue, each on the caller's own VM.
import { KernelError } from '@app/shared/errno';
import type { Journal } from '@app/shared/journal/journal';
import { requireVm, type VmmCaller } from '../vmm-caller';
import type { InvalidationResult, VirtualFault, VirtualPageRequest } from './viommu.types';
import type { VmRegistry } from './vm-registry';

export class ViommuOps {
  /** Descriptors the invalidation queues of every VM ran since the VMM started, by type (metrics). */
  readonly descriptorsRun = new Map<string, number>();

  constructor(
    private readonly vms: VmRegistry,
    private readonly journal: Journal,
  ) {}

  /** Registers the PASID directory of a virtual RID (the scalable-mode context entry). */
  async setContext(caller: VmmCaller, id: number, vrid: number, pasidDirGpa: number): Promise<void> {
    requireVm(caller, id);
    const vm = this.vms.running(id);
    await this.journal.run({ operation: 'viommu.set_context', actor: `vm:${id}`, object: `vrid:${id}/${vrid}`, args: { pasidDirGpa } }, () =>
      vm.viommu.setContext(vrid, pasidDirGpa),
    );
  }

  /** The invalidation queue: pasid-cache mirrors guest PASID entries on the host; `wait` completes after all before it. */
  invalidate(caller: VmmCaller, id: number, descriptors: unknown[]): Promise<InvalidationResult> {
    requireVm(caller, id);
    const vm = this.vms.running(id);
    return this.journal.run(
      {
        operation: 'viommu.invalidate',
        actor: `vm:${id}`,
        object: `vm:${id}`,
        args: { descriptors },
        recordResult: (r) => ({ completed: r.completed, faults: r.faults.length }),
      },
      async () => {
        const r = await vm.viommu.invalidate(descriptors);
        // The batch was well formed (a malformed one is EINVAL before anything runs): every descriptor ran.
        for (const d of descriptors as Array<{ type: string }>) this.descriptorsRun.set(d.type, (this.descriptorsRun.get(d.type) ?? 0) + 1);
        return r;
      },
    );
  }

  /** The vIOMMU fault log (virtual RIDs and vPASIDs only). */
  faults(caller: VmmCaller, id: number): VirtualFault[] {
    requireVm(caller, id);
    return this.vms.running(id).viommu.faults();
  }

  pageRequests(caller: VmmCaller, id: number): VirtualPageRequest[] {
    requireVm(caller, id);
    return this.vms.running(id).viommu.pageRequests();
  }

  /**
   * Answers a page request the vIOMMU reported. The DSA-like devices modelled on the host do not
   * block on faults, so nothing forwards a response to the host yet (see docs/): an unknown request is ENOENT.
   */
  async pageResponse(caller: VmmCaller, id: number, r: { vrid: number; vpasid: number; seq: number; success: boolean }): Promise<void> {
    requireVm(caller, id);
    const vm = this.vms.running(id);
    await this.journal.run({ operation: 'viommu.page_response', actor: `vm:${id}`, args: r }, async () => {
      const pending = vm.viommu.pageRequests().find((p) => p.seq === r.seq);
      if (!pending || pending.vrid !== r.vrid || pending.vpasid !== r.vpasid)
        throw new KernelError('ENOENT', `no outstanding page request ${r.seq} for vrid 0x${r.vrid.toString(16)} vpasid ${r.vpasid}`);
      vm.viommu.pageResponse(r.seq, r.success);
    });
  }
}
