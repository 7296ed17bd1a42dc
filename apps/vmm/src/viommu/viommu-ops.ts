// The guest-facing calls of a VM's scalable-mode vIOMMU (DESIGN §3): PASID directory registration (the context
// entry), the invalidation queue, the fault log and the page-request queue, each on the caller's own VM.
import type { Journal } from '@app/shared/journal/journal';
import { requireVm, type VmmCaller } from '../vmm-caller';
import type { GuestPageResponse, InvalidationResult, VirtualFault, VirtualPageRequest } from './viommu.types';
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

  /** The vIOMMU page request queue: every group waiting for the guest's answer, in guest terms. */
  pageRequests(caller: VmmCaller, id: number): VirtualPageRequest[] {
    requireVm(caller, id);
    return this.vms.running(id).viommu.pageRequests();
  }

  /**
   * The guest's page group response: it answers exactly one waiting group of (vrid, vpasid, grpid), the oldest
   * (ENOENT when none waits); `failure` reaches the host as invalid. The host errno, if the host had answered the
   * group already, is journaled, not returned: the guest's answer was taken either way.
   */
  async pageResponse(caller: VmmCaller, id: number, r: GuestPageResponse): Promise<void> {
    requireVm(caller, id);
    const vm = this.vms.running(id);
    const args = { vrid: r.vrid, vpasid: r.vpasid, grpid: r.grpid, code: r.code };
    await this.journal.run({ operation: 'viommu.page_response', actor: `vm:${id}`, object: `vpasid:${id}/${r.vpasid}`, args }, () => vm.viommu.pageResponse(args));
  }
}
