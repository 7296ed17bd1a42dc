import { hostRows, pasidState, pool } from './harness/guest';
import { useStack } from './harness/hooks';
import { AUDIT, eventually, http, newTraceparent } from './harness/stack';

const stack = useStack(async (s) => {
  await s.startHost();
  // The VMM hangs before every MAP_PASID: the test kills it right there.
  await s.startVmm({ DEBUG_STALL_BEFORE: 'mapPasid' });
});

describe('killing the VMM mid-bind', () => {
  it('SIGKILL after ALLOW, before MAP_PASID, leaves no pPASID held on the host', async () => {
    const s = stack();
    const before = await pool(s.host.url);
    const vm = await s.createVm({ name: 'crashy', devices: ['0000:6a:01.0'] });
    const guest = await s.startGuest(vm);
    const st = (await http('GET', `${guest.url}/v1/status`)).body as { machine: { devices: Array<{ vrid: number }> } };
    const { pid } = (await http('POST', `${guest.url}/v1/processes`, { body: { name: 'p' } })).body as { pid: number };
    const t = newTraceparent();
    // The bind never completes: the VMM stalls before MAP_PASID.
    const bind = http('POST', `${guest.url}/v1/sva/bind`, { body: { pid, vrid: st.machine.devices[0].vrid }, traceparent: t.traceparent }).catch(() => undefined);
    const ppasid = await eventually(async () => {
      const rows = await hostRows(s.host.url, t.traceId);
      const allowed = rows.find((r) => r.operation === 'vfio.allow_ioasid' && r.errno === null && r.args.mode === 'pasid');
      return allowed ? (allowed.args.ioasid as number) : undefined;
    }, 10_000, 'ALLOW in pasid mode');
    expect(await pasidState(s.host.url, ppasid)).toBe('allocated');
    expect((await hostRows(s.host.url, t.traceId)).some((r) => r.operation === 'kvm.map_pasid')).toBe(false);

    s.vmmApp.signal('SIGKILL');
    await s.vmmApp.exited;
    await eventually(async () => ((await pasidState(s.host.url, ppasid)) === 'free' ? true : undefined), 5000, 'pPASID freed');
    // Everything the VM held (its GPA ioasid too) is back: the pool is as before the VM existed.
    await eventually(async () => {
      const now = await pool(s.host.url);
      return now.allocated === before.allocated && now.parked === 0 ? now : undefined;
    }, 5000, 'pool back to its starting state');
    const exits = (await http('GET', `${s.host.url}/v1/audit/events?operation=process.exit`, { token: AUDIT })).body as Array<{ args: { reason: string } }>;
    expect(exits.some((e) => e.args.reason === 'lifeline dropped')).toBe(true);
    await bind;
  });
});
