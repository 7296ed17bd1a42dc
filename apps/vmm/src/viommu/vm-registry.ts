// What the vIOMMU's guest-facing calls need of the VMM: the running VM behind an id (its vIOMMU), and who may
// call. The VM manager implements it; the vIOMMU does not know how VMs are built.
import type { Viommu } from './viommu';

export interface VmRegistry {
  /** The running VM: ENOENT unknown, EAGAIN while a restart rebuilds it, ENODEV when stopped. */
  running(id: number): { viommu: Viommu };
}
