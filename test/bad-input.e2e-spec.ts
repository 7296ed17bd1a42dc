// The bad-input fuzz (issue 11), generated from the committed OpenAPI documents (openapi/*.json,
// test/harness/bad-input.ts): every route that takes a body gets at least 30 malformed bodies, every route with a
// path parameter gets malformed parameters; each must answer a 4xx with an errno body, never a 5xx, and afterwards
// every app holds exactly what it held before (the host's objects, pool counts, fds and refs; the VMs; the guest).
import { badInputs } from './harness/bad-input';
import { hostTenant } from './harness/host-tenant';
import { useStack } from './harness/hooks';
import { allRoutes, type Doc, fill, type Route, routeName } from './harness/openapi-routes';
import { snapshot } from './harness/sweep/host-view';
import { HOST_ADMIN, http, VMM_ADMIN } from './harness/stack';

const MIN_VARIANTS = 30;
const BAD_PARAMS = ['abc', '-1', '1.5', '0x10', ' 1', '18446744073709551616', 'x'.repeat(10_000)];

const stack = useStack(async (s) => {
  await s.startHost();
  await s.startVmm();
});

describe('bad input on every route of openapi/*.json', () => {
  it('a path id written loosely (" 1", "1e0", "0x1", "+1", "1.0") names nothing: EINVAL, and the VM and process it would have named are untouched', async () => {
    const s = stack();
    const vm = await s.createVm({ name: 'loose' });
    const p = await s.hostProcess('loose');
    const loose = (n: number): string[] => [` ${n}`, `${n}e0`, `0x${n.toString(16)}`, `+${n}`, `${n}.0`];
    for (const id of loose(vm.id)) {
      const del = await http('DELETE', `${s.vmmApp.url}/v1/vms/${encodeURIComponent(id)}`, { token: VMM_ADMIN });
      expect([id, del.status, (del.body as { errno?: string }).errno]).toEqual([id, 400, 'EINVAL']);
    }
    for (const pid of loose(p.pid)) {
      // The bearer rule sees first that the path names no process of this token (" 101" is not "101"): EPERM.
      const got = await http('GET', `${s.host.url}/v1/processes/${encodeURIComponent(pid)}`, { token: p.token });
      expect([pid, got.status, (got.body as { errno?: string }).errno]).toEqual([pid, 403, 'EPERM']);
      const admin = await http('GET', `${s.host.url}/v1/processes/${encodeURIComponent(pid)}`, { token: HOST_ADMIN });
      expect([pid, admin.status, (admin.body as { errno?: string }).errno]).toEqual([pid, 400, 'EINVAL']);
    }
    expect(((await http('GET', `${s.vmmApp.url}/v1/vms/${vm.id}`, { token: VMM_ADMIN })).body as { state: string }).state).toBe('running');
    expect((await http('DELETE', `${s.vmmApp.url}/v1/vms/${vm.id}`, { token: VMM_ADMIN })).status).toBe(204);
  });

  it(`≥${MIN_VARIANTS} malformed bodies per body route and malformed path parameters: a 4xx errno every time, 0 5xx, and no app changed`, async () => {
    const s = stack();
    const tenant = await hostTenant(s, 'fuzzed');
    const vm = await s.createVm({ name: 'fuzzed', devices: ['0000:6b:01.0'] });
    const guest = await s.startGuest(vm);
    const status = (await http('GET', `${guest.url}/v1/status`)).body as { machine: { devices: Array<{ vrid: number }> } };
    const { pid: guestPid } = (await http('POST', `${guest.url}/v1/processes`, { body: { name: 'fuzzed' } })).body as { pid: number };
    const base: Record<Doc, string> = { 'host-kernel': s.host.url, vmm: s.vmmApp.url, guest: guest.url };
    const tokens: Record<Doc, Array<string | undefined>> = { 'host-kernel': [tenant.token, HOST_ADMIN], vmm: [vm.token, VMM_ADMIN], guest: [undefined] };
    const values = (r: Route): Record<string, string | number> =>
      r.app === 'host-kernel' ? tenant.values(r) : r.app === 'vmm' ? { id: vm.id, n: 0, vrid: status.machine.devices[0].vrid } : { pid: guestPid };

    const everything = async (): Promise<unknown> => ({
      host: await snapshot(s.host.url),
      vms: (await http('GET', `${s.vmmApp.url}/v1/vms`, { token: VMM_ADMIN })).body,
      machine: (await http('GET', `${s.vmmApp.url}/v1/vms/${vm.id}/machine`, { token: VMM_ADMIN })).body,
      guest: (await http('GET', `${guest.url}/v1/status`)).body,
    });
    const before = await everything();

    /** The first of the route's tokens that passes authentication (what answers a variant is then the input check). */
    const tokenOf = new Map<string, string | undefined>();
    const send = async (r: Route, url: string, raw?: string, contentType?: string): Promise<{ status: number; body: unknown; text: string }> => {
      const go = (token?: string): Promise<{ status: number; body: unknown; text: string }> => http(r.method, url, { token, rawBody: raw, headers: contentType ? { 'content-type': contentType } : undefined });
      const known = tokenOf.get(routeName(r));
      if (tokenOf.has(routeName(r))) return go(known);
      let res = { status: 0, body: undefined as unknown, text: '' };
      for (const token of tokens[r.app]) {
        res = await go(token);
        if (res.status !== 401 && res.status !== 403) {
          tokenOf.set(routeName(r), token);
          break;
        }
      }
      return res;
    };
    const wrong: string[] = [];
    const short: string[] = [];
    let sent = 0;
    let fivexx = 0;
    const check = (what: string, res: { status: number; body: unknown; text: string }): void => {
      sent++;
      if (res.status >= 500) fivexx++;
      const errno = (res.body as { errno?: unknown } | undefined)?.errno;
      if (res.status < 400 || res.status >= 500 || typeof errno !== 'string' || !/^E[A-Z]+$/.test(errno)) wrong.push(`${what}: ${res.status} ${res.text.slice(0, 160)}`);
    };
    const bodyRoutes = allRoutes().filter((r) => r.body);
    for (const r of bodyRoutes) {
      const variants = badInputs(r);
      if (variants.length < MIN_VARIANTS) short.push(`${routeName(r)}: ${variants.length}`);
      const url = fill(base[r.app], r, values(r));
      for (const v of variants) {
        const res = await send(r, url, v.raw, v.contentType).catch((err: Error) => {
          throw new Error(`${routeName(r)} with ${v.what}: ${err.message} (${String(err.cause)})\n${guest.tail()}\n${guest.stdout.slice(-5).join('\n')}`);
        });
        check(`${routeName(r)} with ${v.what}`, res);
      }
    }
    const paramRoutes = allRoutes().filter((r) => r.params.some((p) => p !== 'bdf'));
    for (const r of paramRoutes) {
      for (const p of r.params.filter((x) => x !== 'bdf')) {
        for (const bad of BAD_PARAMS) {
          const url = fill(base[r.app], r, { ...values(r), [p]: bad });
          const raw = r.body ? JSON.stringify({}) : undefined;
          const res = await send(r, url, raw).catch((err: Error) => {
            throw new Error(`${routeName(r)} with {${p}} = ${bad.slice(0, 20)}: ${err.message} (${String(err.cause)})\n${guest.tail()}`);
          });
          check(`${routeName(r)} with {${p}} = ${bad.slice(0, 20)}`, res);
        }
      }
    }
    process.stdout.write(`bad input: ${bodyRoutes.length} body routes, ${paramRoutes.length} routes with parameters, ${sent} variants sent, ${fivexx} 5xx, ${wrong.length} not a 4xx errno\n`);
    expect(short).toEqual([]);
    expect(wrong).toEqual([]);
    expect(await everything()).toEqual(before);
    // The stack still works: the tenant's ioasid answers, the guest's process is there.
    const infoRoute = allRoutes().find((r) => r.app === 'host-kernel' && r.method === 'GET' && r.path === '/v1/ioasid/{fd}/ioasids/{ioasid}') as Route;
    const info = await http('GET', fill(s.host.url, infoRoute, values(infoRoute)), { token: tenant.token });
    expect(info.status).toBe(200);
  }, 180_000);
});
