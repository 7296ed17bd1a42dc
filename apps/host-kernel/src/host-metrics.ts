// What /metrics says about a host kernel, read from the kernel's own state and counters when scraped
// (libs/shared/src/metrics/metrics.ts). Each group names the part it reads; docs/observability.md lists them.
import { type AppMetrics, countBy } from '@app/shared/metrics/metrics';
import { limitsView } from './hw/limits-view';
import type { Kernel } from './kernel';
import { kernelState } from './kernel-state';
import type { LimitName, ProcessUsage } from './limits/limits';

const IOASID_STATES = ['allocated', 'bound', 'destroyed'] as const;
const USAGE: Array<keyof ProcessUsage> = ['pasids', 'pinnedBytes', 'residentBytes', 'fds'];

export function hostMetrics(m: AppMetrics, k: Kernel): void {
  // ioasid/ioasid-layer.ts: the PASID pool and the ioasids in it.
  m.gauge('pasids', 'Host PASIDs by pool state (parked: destroyed, still held until every holder lets go)', ['state'], () => {
    const p = k.ioasids.pasidPool();
    return [
      [{ state: 'allocated' }, p.allocated],
      [{ state: 'parked' }, p.parked],
      [{ state: 'free' }, p.free],
    ];
  });
  m.gauge('ioasids', 'ioasids by state (destroyed = parked, waiting for its holders)', ['state'], () => countBy(k.ioasids.all(), 'state', (i) => i.state, IOASID_STATES));
  // iommu/attach-table.ts: device routes.
  m.gauge('routes', 'IOMMU routes by kind (rid: requests without PASID; pasid: RID+PASID) and whether blocked', ['kind', 'blocked'], () => {
    const out = new Map<string, number>([['rid\0false', 0], ['rid\0true', 0], ['pasid\0false', 0], ['pasid\0true', 0]]);
    for (const r of k.iommu.table.routes()) {
      const key = `${r.ppasid === null ? 'rid' : 'pasid'}\0${r.blocked}`;
      out.set(key, (out.get(key) ?? 0) + 1);
    }
    return [...out].map(([key, n]) => {
      const [kind, blocked] = key.split('\0');
      return [{ kind, blocked }, n] as const;
    });
  });
  // iommu/iotlb.ts
  m.counter('iotlb_hits_total', 'IOTLB lookups that hit', [], () => k.iommu.iotlb.stats.hits);
  m.counter('iotlb_misses_total', 'IOTLB lookups that missed (a page walk followed)', [], () => k.iommu.iotlb.stats.misses);
  m.counter('iotlb_evictions_total', 'IOTLB entries evicted by capacity', [], () => k.iommu.iotlb.stats.evictions);
  m.gauge('iotlb_entries', 'IOTLB entries held', [], () => k.iommu.iotlb.stats.entries);
  // iommu/pde-cache.ts
  m.counter('iommu_pde_cache_hits_total', 'First-stage walks that started from a cached PDE (only the PTE read)', [], () => k.iommu.iotlb.pde.stats.hits);
  m.counter('iommu_pde_cache_misses_total', 'First-stage walks that read every level', [], () => k.iommu.iotlb.pde.stats.misses);
  // iommu/iommu.ts: every fault since boot, by VT-d reason (the fault log keeps only the newest).
  m.counter('iommu_faults_total', 'IOMMU faults by VT-d fault reason', ['reason'], () => [...k.iommu.faultCounts()].map(([reason, n]) => [{ reason }, n] as const));
  // devices/accelerator.ts: each work queue.
  const perDevice = (pick: (s: ReturnType<typeof k.accelerators.stats>[number]) => number) => () => k.accelerators.stats().map((s) => [{ bdf: s.bdf }, pick(s)] as const);
  m.counter('device_descriptors_submitted_total', 'Descriptors accepted into a work queue', ['bdf'], perDevice((s) => s.submitted));
  m.counter('device_descriptors_retried_total', 'ENQCMD submissions answered retry (ZF=1: the queue was full)', ['bdf'], perDevice((s) => s.retried));
  m.counter('device_descriptors_completed_total', 'Descriptors completed successfully', ['bdf'], perDevice((s) => s.completed));
  m.counter('device_descriptors_faulted_total', 'Descriptors that ended in a page fault', ['bdf'], perDevice((s) => s.faulted));
  m.counter('device_descriptors_aborted_total', 'Descriptors dropped by a drain or a function reset', ['bdf'], perDevice((s) => s.aborted));
  m.gauge('device_queue_depth', 'Descriptors waiting in a work queue', ['bdf'], perDevice((s) => s.queued));
  // process/ and kvm/
  m.gauge('processes', 'Host processes by state', ['state'], () => countBy(k.procs.all(), 'state', (p) => p.state, ['running', 'exited']));
  m.gauge('kvm_vpasid_mappings', 'KVM vPASID → pPASID entries, over every VM fd', [], () => kernelState(k).vms.reduce((n, v) => n + v.pasids.length, 0));
  // iommu/page-request-queue.ts: every page request group answered since boot, by code and by why.
  m.counter('page_requests_total', 'Page request groups answered, by response code and reason (response, teardown, timeout, overflow, refused)', ['code', 'reason'], () =>
    k.iommu.prq.answers(),
  );
  m.gauge('page_requests_pending', 'Page request groups waiting for an answer', [], () => k.iommu.prq.stats().pending);
  // limits/limits.ts and hw/limits-view.ts: what each running process uses of what the limits bound, the limits
  // themselves (a process's usage is `usage / limit` in PromQL), and the host-wide counts.
  m.gauge('host_process_usage', 'What a running host process uses of each limited resource (counts; bytes for memory)', ['pid', 'resource'], () =>
    limitsView(k).processes.flatMap((p) => USAGE.map((r) => [{ pid: String(p.pid), resource: r }, p.usage[r]] as const)),
  );
  m.gauge('host_limit', 'The limits in force (PASID_LIMIT, PIN_LIMIT_MIB, MEM_LIMIT_MIB, FD_LIMIT: per process; FILE_MAX: host; PROCESS_LIMIT: per creator)', ['resource'], () =>
    (Object.keys(k.limits) as LimitName[]).map((r) => [{ resource: r }, k.limits[r]] as const),
  );
  m.gauge('host_open_files', 'Open files on the host (what FILE_MAX bounds)', [], () => k.procs.files.count);
}

