// What /metrics says about the VMM, read from its VMs and vIOMMUs when scraped (libs/shared/src/metrics/metrics.ts).
import { type AppMetrics, countBy } from '@app/shared/metrics/metrics';
import type { VmmApp } from './vmm.app';
import { vmmState } from './vmm-state';

export function vmmMetrics(m: AppMetrics, app: VmmApp): void {
  m.gauge('vms', 'VMs by state (starting: a VMM restart is rebuilding its host side)', ['state'], () =>
    countBy(app.vms.list({ kind: 'admin' }), 'state', (v) => v.state, ['running', 'starting', 'stopped']),
  );
  // viommu/viommu-ops.ts counts each descriptor of every batch that ran (a malformed batch runs none).
  m.counter('viommu_invalidation_descriptors_total', 'vIOMMU invalidation-queue descriptors run, by type', ['type'], () =>
    [...app.viommu.descriptorsRun].map(([type, n]) => [{ type }, n] as const),
  );
  m.gauge('viommu_shadow_bindings', 'vPASIDs mirrored on the host, over every running VM (stale: a teardown is pending)', ['stale'], () =>
    countBy(vmmState(app).vms.flatMap((v) => v.shadow), 'stale', (b) => String(b.stale), ['false', 'true']),
  );
  // viommu/page-requests.ts: each running VM's guest page request queue.
  m.gauge('viommu_page_requests_waiting', 'Page request groups forwarded to the guest and not answered yet, per VM', ['vm'], () =>
    vmmState(app).vms.filter((v) => v.state === 'running').map((v) => [{ vm: String(v.id) }, v.pageRequests.waiting] as const),
  );
  m.counter('viommu_page_request_overflows_total', 'Page request groups the guest queue could not take (answered success; resets when the VM is rebuilt)', ['vm'], () =>
    vmmState(app).vms.filter((v) => v.state === 'running').map((v) => [{ vm: String(v.id) }, v.pageRequests.overflows] as const),
  );
}
