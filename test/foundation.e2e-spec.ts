import { callName } from '../libs/shared/src/audit/sequence';
import { useStack } from './harness/hooks';
import { AUDIT, eventually, HOST_ADMIN, http, newTraceparent, VMM_ADMIN } from './harness/stack';

interface Row {
  app: string;
  result: unknown;
  operation: string;
  traceId: string;
  errno: string | null;
  actor: string;
  args: Record<string, unknown>;
  wallMs: number;
  object: string | null;
}

const stack = useStack(async (s) => {
  await s.startHost();
  await s.startVmm();
});

async function events(url: string, query: string): Promise<Row[]> {
  const res = await http('GET', `${url}/v1/audit/events?${query}`, { token: AUDIT });
  expect(res.status).toBe(200);
  return res.body as Row[];
}

describe('the walking skeleton across three processes', () => {
  it('create a VM and boot its guest: every journal holds that flow under one trace, drawn guest → vmm → host-kernel', async () => {
    const s = stack();
    const { traceId, traceparent } = newTraceparent();
    const vm = await s.createVm({ name: 'trace-demo', vcpus: 2 }, traceparent);
    const guest = await s.startGuest(vm, { TRACEPARENT: traceparent });

    const status = await http('GET', `${guest.url}/v1/status`);
    expect(status.body).toMatchObject({ booted: true, vmId: vm.id, machine: { memoryMiB: 16, vcpus: 2, devices: [] } });

    const host = await events(s.host.url, `trace=${traceId}`);
    const vmm = await events(s.vmmApp.url, `trace=${traceId}`);
    const g = await events(guest.url, `trace=${traceId}`);
    for (const rows of [host, vmm, g]) {
      expect(rows.length).toBeGreaterThan(0);
      expect(rows.every((r) => r.traceId === traceId && r.errno === null)).toBe(true);
    }
    expect(g.map((r) => r.operation)).toContain('guest.boot');
    expect(vmm.map((r) => r.operation)).toEqual(expect.arrayContaining(['vm.create', 'vcpu.wrmsr']));
    expect(host.map((r) => r.operation)).toEqual(expect.arrayContaining(['process.create', 'kvm.create_vm', 'kvm.vcpu_wrmsr']));
    // Boot resets IA32_PASID on both vCPUs: two guest-driven wrmsr calls reach the host.
    expect(host.filter((r) => r.operation === 'kvm.vcpu_wrmsr')).toHaveLength(2);

    // Whichever app is asked draws the whole trace: it federates the journals of its peers (configured,
    // or learned from the lifelines it serves: the host learns its VMM, the VMM its guest).
    for (const url of [guest.url, s.vmmApp.url, s.host.url]) {
      const seq = await http('GET', `${url}/v1/audit/sequence?trace=${traceId}`, { token: AUDIT });
      expect(seq.status).toBe(200);
      const lines = (seq.text as string).split('\n');
      expect(lines[0]).toBe('sequenceDiagram');
      const toVmm = lines.findIndex((l) => l.includes(`guest->>vmm: ${callName('vmm', 'vcpu.wrmsr')}`));
      const toHost = lines.findIndex((l) => l.includes(`vmm->>host-kernel: ${callName('host-kernel', 'kvm.vcpu_wrmsr')}`));
      expect([url, toVmm > 0, toHost > toVmm]).toEqual([url, true, true]);
      expect(lines.findIndex((l) => l.includes(`operator->>vmm: ${callName('vmm', 'vm.create')}`))).toBeGreaterThan(0);
      expect(lines.findIndex((l) => l.includes(`vmm->>host-kernel: ${callName('host-kernel', 'process.create')}`))).toBeGreaterThan(0);
    }
  });

  it('a VMM restarted on the same data dir still lists its VMs', async () => {
    const s = stack();
    const vm = await s.createVm({ name: 'survivor' });
    expect(await s.vmmApp.stop('SIGTERM')).toBe(0);
    await s.startVmm();
    const list = await http('GET', `${s.vmmApp.url}/v1/vms`, { token: VMM_ADMIN });
    expect(list.status).toBe(200);
    expect(list.body).toEqual(expect.arrayContaining([expect.objectContaining({ id: vm.id, name: 'survivor' })]));
    // Its host side is rebuilt in the background (a power cycle): starting, then running.
    await eventually(async () => {
      const v = (await http('GET', `${s.vmmApp.url}/v1/vms/${vm.id}`, { token: VMM_ADMIN })).body as { state: string };
      return v.state === 'running' ? v : undefined;
    }, 10_000, 'the restored VM running');
    // The guest-facing token survived too.
    const machine = await http('GET', `${s.vmmApp.url}/v1/vms/${vm.id}/machine`, { token: vm.token });
    expect(machine.status).toBe(200);
  });

  it('SIGKILL of the VMM: the host kernel marks the VM process exited within a second (lifeline dropped)', async () => {
    const s = stack();
    await s.createVm({ name: 'doomed' });
    const created = (await events(s.host.url, 'operation=process.create')).filter((r) => r.args.comm === 'vmm/doomed');
    const pid = Number((created.at(-1)?.object ?? '').split(':')[1]);
    expect(pid).toBeGreaterThan(0);
    const before = await http('GET', `${s.host.url}/v1/processes/${pid}`, { token: HOST_ADMIN });
    expect(before.body).toMatchObject({ pid, state: 'running' });

    const killedAt = Date.now();
    s.vmmApp.signal('SIGKILL');
    await s.vmmApp.exited;
    const exitRow = await eventually(async () => {
      const rows = await events(s.host.url, `object=process:${pid}&operation=process.exit`);
      return rows.length ? rows[0] : undefined;
    });
    expect(exitRow.args).toMatchObject({ reason: 'lifeline dropped' });
    // The host's own clock says when it noticed: that is the reaction being measured, not our polling.
    expect(exitRow.wallMs - killedAt).toBeLessThan(1000);
    const after = await http('GET', `${s.host.url}/v1/processes/${pid}`, { token: HOST_ADMIN });
    expect(after.body).toMatchObject({ pid, state: 'exited', fds: [] });
    await s.startVmm();
  });

  it('no token, a wrong token, another process’s pid: 401/403 with an errno body, and no success journaled', async () => {
    const s = stack();
    const a = await s.hostProcess('a');
    const b = await s.hostProcess('b');
    const url = `${s.host.url}/v1/processes/${b.pid}/mmap`;
    const none = await http('POST', url, { body: { length: 4096 } });
    expect(none.status).toBe(401);
    expect(none.body).toMatchObject({ errno: 'EACCES', code: 13 });
    const wrong = await http('POST', url, { body: { length: 4096 }, token: 'not-a-token-of-anyone' });
    expect(wrong.status).toBe(401);
    expect(wrong.body).toMatchObject({ errno: 'EACCES' });
    const other = await http('POST', url, { body: { length: 4096 }, token: a.token });
    expect(other.status).toBe(403);
    expect(other.body).toMatchObject({ errno: 'EPERM', code: 1 });
    expect(typeof (other.body as { traceId: string }).traceId).toBe('string');
    const admin = await http('GET', `${s.host.url}/v1/hw/pasids`, { token: a.token });
    expect(admin.status).toBe(403);
    const mmaps = await events(s.host.url, 'operation=mm.mmap');
    expect(mmaps.filter((r) => r.errno === null && (r.actor === `pid:${b.pid}` || r.actor === `pid:${a.pid}`))).toEqual([]);
    // The VMM: a VM token reaches only its own VM.
    const v1 = await s.createVm({ name: 'auth-1' });
    const v2 = await s.createVm({ name: 'auth-2' });
    const cross = await http('GET', `${s.vmmApp.url}/v1/vms/${v2.id}/machine`, { token: v1.token });
    expect(cross.status).toBe(403);
    expect(cross.body).toMatchObject({ errno: 'EPERM' });
    const manage = await http('DELETE', `${s.vmmApp.url}/v1/vms/${v2.id}`, { token: v1.token });
    expect(manage.status).toBe(403);
    // The audit plane (which names host PASIDs) is the operator's, not a guest's.
    const audit = await http('GET', `${s.vmmApp.url}/v1/audit/events?federate=true`, { token: v1.token });
    expect(audit.status).toBe(401);
    expect(audit.body).toMatchObject({ errno: 'EACCES' });
  });

  it('a VM whose build fails half-way is unwound on the host: no PASID, no device, no process left, and no id consumed', async () => {
    const s = stack();
    const holder = await s.createVm({ name: 'holder', devices: ['0000:6a:01.0'] });
    const pool = async (): Promise<unknown> => (await http('GET', `${s.host.url}/v1/hw/pasids`, { token: HOST_ADMIN })).body;
    const before = await pool();
    // The second device is already open by `holder`: VFIO says EBUSY after the VMM built RAM, KVM and the GPA ioasid.
    const res = await http('POST', `${s.vmmApp.url}/v1/vms`, {
      token: VMM_ADMIN,
      body: { name: 'loser', memoryMiB: 16, vcpus: 1, devices: ['0000:6b:01.0', '0000:6a:01.0'] },
    });
    expect(res.status).toBe(409);
    expect(res.body).toMatchObject({ errno: 'EBUSY' });
    expect(await pool()).toEqual(before);
    const created = (await events(s.host.url, 'operation=process.create')).filter((r) => r.args.comm === 'vmm/loser');
    expect(created).toHaveLength(1);
    const pid = Number(created[0].object?.split(':')[1]);
    const proc = await http('GET', `${s.host.url}/v1/processes/${pid}`, { token: HOST_ADMIN });
    expect(proc.body).toMatchObject({ state: 'exited', fds: [] });
    // 6b was opened by the failed build and closed again: another VM can have it.
    const next = await s.createVm({ name: 'winner', devices: ['0000:6b:01.0'] });
    expect(next.id).toBe(holder.id + 1);
    const list = (await http('GET', `${s.vmmApp.url}/v1/vms`, { token: VMM_ADMIN })).body as Array<{ name: string }>;
    expect(list.map((v) => v.name)).not.toContain('loser');
  });

  it('a host-kernel restart is a reboot: a clean shutdown kills every process, the VMM marks its VMs stopped, pids are not reused', async () => {
    const s = stack();
    const vm = await s.createVm({ name: 'orphan' });
    const created = (await events(s.host.url, 'operation=process.create')).filter((r) => r.args.comm === 'vmm/orphan');
    const pid = Number(created.at(-1)?.object?.split(':')[1]);
    expect(await s.host.stop('SIGTERM')).toBe(0);
    // The VMM saw the VM's lifeline end: the VM is stopped (its host side is gone), not silently "running".
    const view = await eventually(async () => {
      const v = (await http('GET', `${s.vmmApp.url}/v1/vms/${vm.id}`, { token: VMM_ADMIN })).body as { state: string; stopReason: string; hostDetail: string };
      return v.state === 'stopped' ? v : undefined;
    }, 5000, 'vm stopped');
    // The admin reads the host's account; the reason itself is in guest terms (the VM's token reads it too).
    expect(view.hostDetail).toMatch(/host process \d+ ended/);
    expect(view.stopReason).toBe('powered off: its host side ended');
    const machine = await http('GET', `${s.vmmApp.url}/v1/vms/${vm.id}/machine`, { token: vm.token });
    expect(machine.status).toBe(404);
    expect(machine.body).toMatchObject({ errno: 'ENODEV' });
    await s.startHost();
    // The clean shutdown killed the VM's process (journaled), so the next boot found none left running.
    const exit = (await events(s.host.url, `operation=process.exit&object=process:${pid}`)).at(-1)!;
    expect(exit.args).toMatchObject({ reason: 'host-kernel shutdown' });
    const boot = (await events(s.host.url, 'operation=kernel.boot')).at(-1)!;
    expect(boot.result).toMatchObject({ exitedAtBoot: [] });
    // The restarted kernel answers from its database for the process it no longer runs.
    const proc = await http('GET', `${s.host.url}/v1/processes/${pid}`, { token: HOST_ADMIN });
    expect(proc.body).toMatchObject({ pid, comm: 'vmm/orphan', state: 'exited', fds: [], exitReason: 'host-kernel shutdown' });
    // pids are never reused across the reboot.
    const fresh = await s.hostProcess('after-reboot');
    expect(fresh.pid).toBeGreaterThan(pid);
    // The VMM must be pointed at the new host kernel (new port): restart it too for the tests after this one.
    await s.vmmApp.stop('SIGTERM');
    await s.startVmm();
  });

  it('a bad configuration stops an app with one clear line and no stack trace', async () => {
    const { spawnSync } = await import('node:child_process');
    const { ENTRY } = await import('./harness/apps');
    const r = spawnSync(process.execPath, [ENTRY.vmm], { env: { PATH: process.env.PATH, PORT: 'seventy' }, encoding: 'utf8', timeout: 20_000 });
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual(['vmm: PORT must be an integer in [0, 65535], got "seventy"']);
  });
});
