// The authorization matrix (issue 11): every route of the three committed OpenAPI documents (openapi/*.json) is
// called with no token, a garbage token, another tenant's token against this tenant's ids (which the ownership
// check itself must refuse), a VM token against the host kernel, and a process's (and a VM's) token against the
// audit plane. A route added tomorrow is in the
// matrix the day it is added; the only routes any caller may use are named below, each with its reason.
import { allRoutes, fill, isAuditPlane, plausible, type Route, routeName } from './harness/openapi-routes';
import { hostTenant } from './harness/host-tenant';
import { useStack } from './harness/hooks';
import { http, VMM_ADMIN } from './harness/stack';

/** Routes anyone may call (DESIGN §5, docs/choices.md): liveness, a tokenless process (capped), the guest OS's own console. */
const PUBLIC = (r: Route): boolean => r.path === '/health' || (r.app === 'host-kernel' && r.method === 'POST' && r.path === '/v1/processes') || (r.app === 'guest' && !isAuditPlane(r));
/** Host routes naming no object, where a process's token acts on what it creates for itself (an fd of its own). */
const OWN = new Set(['host-kernel POST /v1/ioasid', 'host-kernel POST /v1/kvm/vms', 'host-kernel GET /v1/vfio/devices']);
const GARBAGE = 'garbage-token-0123456789abcdef';
const CROSS_TENANT = "another process's token, this one's ids";
/**
 * Inputs a route accepts, where the schema's plausible body (or no query) would be refused by validation before
 * the route looks its fd up: a cross-tenant probe must reach the ownership check to prove it.
 */
const VALID: Record<string, { body?: unknown; query?: string }> = {
  'host-kernel POST /v1/ioasid/{fd}/ioasids/{ioasid}/unmap': { body: { all: true } },
  'host-kernel PUT /v1/kvm/{fd}/memory': { body: { gpa: 0, data: 'AAAAAA==' } },
  'host-kernel GET /v1/kvm/{fd}/memory': { query: '?gpa=0&length=8' },
};
/**
 * How a host route refuses another process's token naming this one's objects: an fd that is not the caller's
 * (EBADF), a pid that is not the caller's (EPERM), the device this tenant holds open (VFIO's exclusive open,
 * EBUSY), or the audit plane, which no process token opens (401 EACCES).
 */
function ownershipRefusal(r: Route, res: { status: number; errno?: string }): boolean {
  if (isAuditPlane(r)) return res.status === 401 && res.errno === 'EACCES';
  if (routeName(r) === 'host-kernel POST /v1/vfio/devices/{bdf}/open') return res.errno === 'EBUSY';
  return res.errno === 'EBADF' || res.errno === 'EPERM';
}

interface Probe {
  column: string;
  route: Route;
  token?: string;
  url: string;
}

const stack = useStack(async (s) => {
  await s.startHost();
  await s.startVmm();
});

async function call(p: Probe): Promise<{ status: number; errno?: string }> {
  const valid = VALID[routeName(p.route)];
  const body = valid?.body ?? (p.route.body ? plausible(p.route.app, p.route.body) : undefined);
  const res = await http(p.route.method, p.url + (valid?.query ?? ''), { token: p.token, body });
  return { status: res.status, errno: (res.body as { errno?: string } | undefined)?.errno };
}

describe('the authorization matrix, from openapi/*.json', () => {
  it('every route refuses a missing, garbage, foreign or wrong-plane token: 0 wrong successes, 0 5xx', async () => {
    const s = stack();
    const victim = await hostTenant(s, 'victim');
    const attacker = await s.hostProcess('attacker');
    const vm1 = await s.createVm({ name: 'tenant-1' });
    const vm2 = await s.createVm({ name: 'tenant-2' });
    const base = { 'host-kernel': s.host.url, vmm: s.vmmApp.url, guest: '' };
    const guest = await s.startGuest(vm1);
    base.guest = guest.url;
    const values = (r: Route): Record<string, string | number> =>
      r.app === 'host-kernel' ? victim.values(r) : { id: vm1.id, n: 0, vrid: 8, pid: 1 };
    const probes: Probe[] = [];
    for (const route of allRoutes()) {
      const url = fill(base[route.app], route, values(route)) + (route.path === '/v1/audit/sequence' ? '?trace=00000000000000000000000000000001' : '');
      const add = (column: string, token?: string): void => void probes.push({ column, route, token, url });
      if (!PUBLIC(route)) {
        add('no token');
        add('garbage token', GARBAGE);
      }
      if (route.app === 'host-kernel' && !PUBLIC(route) && !(route.params.length === 0 && OWN.has(routeName(route)))) add(CROSS_TENANT, attacker.token);
      if (route.app === 'vmm' && !PUBLIC(route)) add("another VM's token, this one's ids", vm2.token);
      if (route.app === 'host-kernel' && !PUBLIC(route)) add('a VM token against the host', vm1.token);
      if (isAuditPlane(route)) {
        add('a process token against the audit plane', victim.token);
        if (route.app === 'vmm') add('a VM token against the audit plane', vm1.token);
      }
    }
    const wrong: string[] = [];
    const fivexx: string[] = [];
    const byColumn = new Map<string, number>();
    for (const p of probes) {
      const r = await call(p);
      byColumn.set(p.column, (byColumn.get(p.column) ?? 0) + 1);
      const what = `${p.column}: ${routeName(p.route)} → ${r.status} ${r.errno ?? ''}`;
      if (r.status < 400) wrong.push(what);
      else if (r.status >= 500) fivexx.push(what);
      // No token or one nobody holds: refused by the bearer rule itself, before the route runs.
      else if ((p.column === 'no token' || p.column === 'garbage token' || p.column === 'a VM token against the host') && (r.status !== 401 || r.errno !== 'EACCES')) wrong.push(`${what} (not 401 EACCES)`);
      // Another tenant's token is refused by the ownership check itself, not by validation on the way to it.
      else if (p.column === CROSS_TENANT && !ownershipRefusal(p.route, r)) wrong.push(`${what} (not the ownership check)`);
    }
    process.stdout.write(`authz matrix: ${allRoutes().length} routes, ${probes.length} probes (${[...byColumn].map(([c, n]) => `${c} ${n}`).join(', ')}), ${wrong.length} wrong successes, ${fivexx.length} 5xx\n`);
    expect(wrong).toEqual([]);
    expect(fivexx).toEqual([]);
    // Every route is in the matrix, and every non-public one in at least two columns.
    const covered = new Set(probes.map((p) => routeName(p.route)));
    expect(allRoutes().filter((r) => !PUBLIC(r) && !covered.has(routeName(r)))).toEqual([]);
    // The victim still holds all it held: nothing the attacker sent took effect.
    const still = await http('GET', `${s.host.url}/v1/processes/${victim.pid}`, { token: victim.token });
    expect((still.body as { state: string }).state).toBe('running');
    const vms = (await http('GET', `${s.vmmApp.url}/v1/vms`, { token: VMM_ADMIN })).body as Array<{ id: number; state: string }>;
    expect(vms.filter((v) => v.id === vm1.id || v.id === vm2.id).map((v) => v.state)).toEqual(['running', 'running']);
  });
});
