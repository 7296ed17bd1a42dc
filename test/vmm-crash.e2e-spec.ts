import { join } from 'node:path';
import { hostRows, pasidState, pool } from './harness/guest';
import { useStack } from './harness/hooks';
import { AUDIT, eventually, HOST_ADMIN, http, newTraceparent, VMM_ADMIN } from './harness/stack';

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

  it('SIGKILL in the middle of building a VM leaves nothing on the host: the lifeline is held from the first step', async () => {
    const s = stack();
    s.vmmApp.signal('SIGKILL');
    await s.vmmApp.exited;
    // A fresh VMM data dir: nothing to restore, only the build under test talks to the host.
    await s.startVmm({ DEBUG_STALL_BEFORE: 'setPasidTranslation', DATA_DIR: join(s.dataDir, 'vmm-2') });
    const before = await pool(s.host.url);
    // The build hangs at its last step: RAM, KVM, the GPA ioasid and the device are all set up by then.
    const t = newTraceparent();
    const creating = http('POST', `${s.vmmApp.url}/v1/vms`, {
      token: VMM_ADMIN,
      traceparent: t.traceparent,
      body: { name: 'half-built', memoryMiB: 16, vcpus: 1, devices: ['0000:6b:01.0'] },
    }).catch(() => undefined);
    const pid = await eventually(async () => {
      const rows = await hostRows(s.host.url, t.traceId);
      if (!rows.some((r) => r.operation === 'vfio.allow_ioasid' && r.errno === null)) return undefined;
      return Number((rows.find((r) => r.operation === 'process.create')?.object ?? '').split(':')[1]);
    }, 10_000, 'the device allowed on the GPA ioasid');
    expect(pid).toBeGreaterThan(0);
    expect((await pool(s.host.url)).allocated).toBe(before.allocated + 1);
    s.vmmApp.signal('SIGKILL');
    await s.vmmApp.exited;
    await eventually(async () => {
      const p = await http('GET', `${s.host.url}/v1/processes/${pid}`, { token: HOST_ADMIN });
      return (p.body as { state: string }).state === 'exited' ? true : undefined;
    }, 5000, 'the half-built VM process reaped');
    expect(await pool(s.host.url)).toEqual(before);
    // The device it had opened is free again.
    const other = await s.hostProcess('next-owner');
    expect(await other.k.openDevice('0000:6b:01.0')).toBeGreaterThanOrEqual(3);
    await creating;
  });
});
