// What the host kernel holds, read through its operator views (DESIGN §11 "nothing leaks"): the object graph of
// GET /v1/audit/state (processes and fds, ioasids, routes, KVM vPASID tables, pins, fault queues, pending page
// requests) and the admin views GET /v1/hw/pasids, /v1/hw/limits, /v1/hw/iommu/page-requests. A tenant that is gone
// holds nothing: what the host holds is then what it held before the tenant came.
import type { KernelState } from '../../../apps/host-kernel/src/kernel-state';
import { AUDIT, HOST_ADMIN, http } from '../stack';

/**
 * What the host holds for its running tenants, in a stable shape. `machine: true` leaves out what a guest's death
 * does not give back because the VM still owns it: frames its RAM got on first touch, the vCPUs' IA32_PASID MSRs.
 */
export function held(s: KernelState, opts: { machine?: boolean } = {}): Record<string, unknown> {
  return {
    running: s.processes
      .filter((p) => p.state === 'running')
      .map((p) => ({ pid: p.pid, comm: p.comm, fds: p.fds, usage: p.usage, ...(opts.machine ? {} : { residentPages: p.residentPages }) })),
    openFiles: s.openFiles,
    pool: s.pool,
    ioasids: s.ioasids,
    pins: s.pins,
    ...(opts.machine ? {} : { allocatedFrames: s.allocatedFrames }),
    routes: s.routes,
    devices: s.devices.map((d) => ({ bdf: d.bdf, openedBy: d.openedBy, queued: d.queued })),
    vms: s.vms.map((v) => ({ ...v, ia32Pasids: opts.machine ? null : v.ia32Pasids })),
    faultQueues: s.faultQueues,
    pageRequests: s.pageRequests,
  };
}

export async function hostState(url: string): Promise<KernelState> {
  const res = await http('GET', `${url}/v1/audit/state`, { token: AUDIT });
  if (res.status !== 200) throw new Error(`GET /v1/audit/state: ${res.status} ${res.text}`);
  return (res.body as { state: KernelState }).state;
}

/** The admin views of the same: pool counts, each running process's usage, the IOMMU's pending page requests. */
export async function adminViews(url: string, opts: { machine?: boolean } = {}): Promise<{ pool: unknown; limits: unknown; pageRequests: unknown }> {
  const get = async (path: string): Promise<unknown> => {
    const res = await http('GET', `${url}${path}`, { token: HOST_ADMIN });
    if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${res.text}`);
    return res.body;
  };
  const [pool, limits, pageRequests] = await Promise.all([get('/v1/hw/pasids'), get('/v1/hw/limits'), get('/v1/hw/iommu/page-requests')]);
  const l = limits as { host: unknown; processes: Array<{ usage: Record<string, number> }> };
  // A VM's RAM keeps the frames its guest touched: not the guest's to give back.
  const processes = l.processes.map((p) => (opts.machine ? { ...p, usage: { ...p.usage, residentBytes: null } } : p));
  return { pool, limits: { host: l.host, processes }, pageRequests };
}

/**
 * Waits until the host holds exactly `expected` (a `held` projection) and its admin views agree; returns how long
 * that took, or throws with the difference once `deadlineMs` passes.
 */
export async function untilHolds(url: string, expected: { held: Record<string, unknown>; views: unknown }, opts: { machine?: boolean; deadlineMs?: number } = {}): Promise<number> {
  const t0 = Date.now();
  const deadline = t0 + (opts.deadlineMs ?? 8000);
  let last: unknown;
  for (;;) {
    const now = await snapshot(url, opts);
    if (JSON.stringify(now) === JSON.stringify(expected)) return Date.now() - t0;
    last = now;
    if (Date.now() > deadline) {
      throw new Error(`the host still holds something of a dead tenant:\n  now      ${JSON.stringify(last)}\n  expected ${JSON.stringify(expected)}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The host's holdings and admin views now, as `untilHolds` compares them. */
export async function snapshot(url: string, opts: { machine?: boolean } = {}): Promise<{ held: Record<string, unknown>; views: unknown }> {
  return { held: held(await hostState(url), opts), views: await adminViews(url, opts) };
}
