// What /metrics says about a guest, read from its OS when scraped (libs/shared/src/metrics/metrics.ts).
import type { AppMetrics } from '@app/shared/metrics/metrics';
import type { GuestApp } from './guest.app';

export function guestMetrics(m: AppMetrics, app: GuestApp): void {
  m.gauge('guest_processes', 'Guest processes, and those bound to a device through SVA (holding a vPASID)', ['sva'], () => {
    const ps = app.status().processes;
    return [
      [{ sva: 'bound' }, ps.filter((p) => p.vpasid !== null && p.vrids.length > 0).length],
      [{ sva: 'unbound' }, ps.filter((p) => p.vpasid === null || p.vrids.length === 0).length],
    ];
  });
  m.gauge('guest_frames', 'Guest-physical frames of the guest allocator', ['state'], () => {
    const f = app.status().frames;
    return [
      [{ state: 'free' }, f.free],
      [{ state: 'used' }, f.total - f.free],
    ];
  });
  m.gauge('guest_vmm_attached', '1 while the guest holds its lifeline to the VMM', [], () => (app.status().vmmAttached ? 1 : 0));
}
