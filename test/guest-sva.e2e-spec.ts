import { IA32_PASID_VALID } from '../libs/shared/src/x86/msr.constants';
import { guestCall, hostRows, pasidState, pool, ppasidOfTrace, processWithBuffers, readGuest } from './harness/guest';
import { useStack } from './harness/hooks';
import { AUDIT, eventually, http, newTraceparent } from './harness/stack';

const DEV_A = '0000:6a:01.0';
const DEV_B = '0000:6b:01.0';

/** A VM with its guest app, and the trace id of the VM's creation (its host-side rows carry it). */
interface GuestVm {
  id: number;
  token: string;
  url: string;
  createTrace: string;
}
const world: { a?: GuestVm; b?: GuestVm } = {};
const stack = useStack(async (s) => {
  await s.startHost();
  await s.startVmm();
  const createA = newTraceparent();
  const a = await s.createVm({ name: 'guest-a', memoryMiB: 32, devices: [DEV_A] }, createA.traceparent);
  const createB = newTraceparent();
  const b = await s.createVm({ name: 'guest-b', memoryMiB: 32, devices: [DEV_B] }, createB.traceparent);
  world.a = { ...a, url: (await s.startGuest(a)).url, createTrace: createA.traceId };
  world.b = { ...b, url: (await s.startGuest(b)).url, createTrace: createB.traceId };
});

async function vridOf(url: string): Promise<number> {
  const st = await guestCall<{ machine: { devices: Array<{ vrid: number }> } }>(url, 'GET', '/v1/status');
  return st.machine.devices[0].vrid;
}

describe('a guest binds a process to a device and submits work with ENQCMD', () => {
  it('bind → memmove 64 KiB → bytes verified → unbind → the same ENQCMD gets #GP → the pPASID is back in the pool', async () => {
    const s = stack();
    const { url, id, token, createTrace } = world.a!;
    const vrid = await vridOf(url);
    const len = 64 * 1024;
    // The KVM VM fd the VMM got when it built VM a (the host journal of that trace).
    const createdVm = (await hostRows(s.host.url, createTrace)).find((r) => r.operation === 'kvm.create_vm' && r.errno === null);
    const vmFd = (createdVm?.result as { fd: number } | undefined)?.fd;
    expect(vmFd).toEqual(expect.any(Number));
    const p = await processWithBuffers(url, 'copier', len, (i) => i * 7 + (i >> 8));

    const bindTrace = newTraceparent();
    const { vpasid } = await guestCall<{ vpasid: number }>(url, 'POST', '/v1/sva/bind', { pid: p.pid, vrid }, bindTrace.traceparent);
    expect(vpasid).toBeGreaterThanOrEqual(1);
    const ppasid = await ppasidOfTrace(s.host.url, bindTrace.traceId);
    expect(await pasidState(s.host.url, ppasid)).toBe('allocated');

    const done = await guestCall<{ result: string; status: number; bytes: number }>(url, 'POST', `/v1/processes/${p.pid}/submit`, {
      vrid,
      descriptor: { op: 'memmove', src: p.src, dst: p.dst, length: len },
    });
    expect(done).toMatchObject({ result: 'accepted', status: 1, bytes: len });
    expect((await readGuest(url, p.pid, p.dst, len)).equals(p.bytes)).toBe(true);

    const unbindTrace = newTraceparent();
    await guestCall(url, 'POST', '/v1/sva/unbind', { pid: p.pid, vrid }, unbindTrace.traceparent);

    // The guest driver no longer has a vPASID for the process: IA32_PASID invalid → #GP, no exit.
    const again = await guestCall<{ result: string; reason: string }>(url, 'POST', `/v1/processes/${p.pid}/submit`, {
      vrid,
      descriptor: { op: 'memmove', src: p.src, dst: p.dst, length: len },
    });
    expect(again).toMatchObject({ result: 'gp' });
    // The very same ENQCMD with the old vPASID in IA32_PASID: KVM's table has no entry → exit → #GP.
    const vmm = s.vmmGuestClient({ id, token });
    await vmm.wrmsr(0, 'IA32_PASID', IA32_PASID_VALID + vpasid);
    const raw = await vmm.enqcmd(0, vrid, { op: 'noop', completion: p.dst });
    expect(raw).toMatchObject({ result: 'gp', reason: 'vpasid-unmapped' });
    expect(await pasidState(s.host.url, ppasid)).toBe('free');

    // The audit: who had access to that pPASID, from when to when.
    const audit = await http('GET', `${s.host.url}/v1/audit/pasids/${ppasid}`, { token: AUDIT });
    const epoch = (audit.body as Array<{ freedAt: string | null; pgtbl: string; access: Array<{ holder: string; fromSeq: number; toSeq: number; endedBy: string }> }>).at(-1)!;
    expect(epoch).toMatchObject({ pgtbl: 'nested', freedAt: expect.any(String) });
    expect(epoch.access.map((a) => [a.holder, a.endedBy])).toEqual([
      ['device 0000:6a:01.0 (pasid)', 'vfio.disallow_ioasid'],
      [`kvm vm fd ${vmFd}: vPASID ${vpasid}`, 'kvm.unmap_pasid'],
    ]);
    const [device, kvm] = epoch.access;
    // Set up device first, torn down KVM first (the exact reverse).
    expect(device.fromSeq).toBeLessThan(kvm.fromSeq);
    expect(kvm.toSeq).toBeLessThan(device.toSeq);
    // A VM token cannot read it.
    expect((await http('GET', `${s.host.url}/v1/audit/pasids/${ppasid}`, { token })).status).toBe(401);
  });

  it('setup on the host is exactly ALLOC, BIND_PGTBL, ALLOW, MAP_PASID; teardown exactly UNMAP_PASID, DISALLOW, DESTROY', async () => {
    const s = stack();
    const { url } = world.a!;
    const vrid = await vridOf(url);
    const { pid } = await guestCall<{ pid: number }>(url, 'POST', '/v1/processes', { name: 'order' });
    const bind = newTraceparent();
    await guestCall(url, 'POST', '/v1/sva/bind', { pid, vrid }, bind.traceparent);
    const unbind = newTraceparent();
    await guestCall(url, 'POST', '/v1/sva/unbind', { pid, vrid }, unbind.traceparent);
    const KINDS = ['ioasid.alloc', 'ioasid.bind_pgtbl', 'vfio.allow_ioasid', 'kvm.map_pasid', 'kvm.unmap_pasid', 'vfio.disallow_ioasid', 'ioasid.destroy'];
    const ops = async (traceId: string): Promise<string[]> =>
      (await hostRows(s.host.url, traceId)).filter((r) => KINDS.includes(r.operation) && r.errno === null).map((r) => r.operation);
    expect(await ops(bind.traceId)).toEqual(['ioasid.alloc', 'ioasid.bind_pgtbl', 'vfio.allow_ioasid', 'kvm.map_pasid']);
    expect(await ops(unbind.traceId)).toEqual(['kvm.unmap_pasid', 'vfio.disallow_ioasid', 'ioasid.destroy']);
    const rows = await hostRows(s.host.url, bind.traceId);
    expect(rows.find((r) => r.operation === 'ioasid.bind_pgtbl')?.args).toMatchObject({ kind: 'nested' });
    expect(rows.find((r) => r.operation === 'vfio.allow_ioasid')?.args).toMatchObject({ mode: 'pasid' });
  });

  it('two VMs bind the same vPASID on the same kind of device: different pPASIDs, isolated bytes', async () => {
    const s = stack();
    // Reboot both guests (a guest reset: the VMM releases the old guest's bindings, the vIOMMU stays open),
    // so each new guest hands out vPASIDs from 1 again and both processes get the same one.
    for (const key of ['a', 'b'] as const) {
      const g = world[key]!;
      const old = s.guests.find((x) => x.url === g.url)!;
      await old.stop('SIGTERM');
      world[key] = { ...g, url: (await s.startGuest(g)).url };
    }
    const results: Array<{ vpasid: number; ppasid: number; ok: boolean }> = [];
    for (const [g, seed] of [
      [world.a!, 0x11],
      [world.b!, 0x77],
    ] as const) {
      const vrid = await vridOf(g.url);
      const p = await processWithBuffers(g.url, 'iso', 8192, (i) => seed ^ i);
      const t = newTraceparent();
      const { vpasid } = await guestCall<{ vpasid: number }>(g.url, 'POST', '/v1/sva/bind', { pid: p.pid, vrid }, t.traceparent);
      const ppasid = await ppasidOfTrace(s.host.url, t.traceId);
      const r = await guestCall<{ status: number }>(g.url, 'POST', `/v1/processes/${p.pid}/submit`, {
        vrid,
        descriptor: { op: 'memmove', src: p.src, dst: p.dst, length: 8192 },
      });
      const dst = await readGuest(g.url, p.pid, p.dst, 8192);
      results.push({ vpasid, ppasid, ok: r.status === 1 && dst.equals(p.bytes) });
    }
    expect(results[0].vpasid).toBe(1);
    expect(results[1].vpasid).toBe(1);
    expect(results[0].ppasid).not.toBe(results[1].ppasid);
    expect(results.every((r) => r.ok)).toBe(true);
  });

  it('munmap flushes the IOTLB before the frames go: the device cannot use a stale translation, and its fault reaches the guest with virtual ids only', async () => {
    const s = stack();
    const { url, id, token } = world.a!;
    const vrid = await vridOf(url);
    const p = await processWithBuffers(url, 'unmapper', 8192, (i) => i ^ 0x5a);
    const t = newTraceparent();
    const { vpasid } = await guestCall<{ vpasid: number }>(url, 'POST', '/v1/sva/bind', { pid: p.pid, vrid }, t.traceparent);
    const ppasid = await ppasidOfTrace(s.host.url, t.traceId);
    const copy = { vrid, descriptor: { op: 'memmove', src: p.src, dst: p.dst, length: 8192 } };
    // The first copy caches the source translations in the IOTLB.
    expect(await guestCall(url, 'POST', `/v1/processes/${p.pid}/submit`, copy)).toMatchObject({ result: 'accepted', status: 1, bytes: 8192 });
    const unmap = newTraceparent();
    await guestCall(url, 'POST', `/v1/processes/${p.pid}/munmap`, { gva: p.src, length: 8192 }, unmap.traceparent);
    // The guest's mmu_notifier sent a PASID-based IOTLB invalidation that became a host INVALIDATE.
    const rows = await hostRows(s.host.url, unmap.traceId);
    expect(rows.some((r) => r.operation === 'ioasid.invalidate' && r.errno === null && r.object === `ioasid:${ppasid}`)).toBe(true);
    // The same copy now faults on the first source page (status 2 at that GVA), instead of reading freed frames:
    // the device asked for the page (block on fault), and the guest's vIOMMU driver found no mapping there.
    expect(await guestCall(url, 'POST', `/v1/processes/${p.pid}/submit`, copy)).toMatchObject({ result: 'accepted', status: 2, faultAddress: p.src });
    const answered = await eventually(async () => {
      const rows = (await http('GET', `${s.vmmApp.url}/v1/audit/events?operation=viommu.page_response`, { token: AUDIT })).body as Array<{ args: { vpasid: number; code: string } }>;
      return rows.find((r) => r.args.vpasid === vpasid && r.args.code === 'invalid');
    }, 5000, 'the guest answering the page request invalid');
    expect(answered.args).toMatchObject({ vrid, vpasid });
    // What the guest was told carries virtual ids only; the guest journaled it.
    const told = (await http('GET', `${url}/v1/audit/events?operation=viommu.page_request`, { token: AUDIT })).body as Array<{ args: Record<string, unknown> }>;
    const request = told.map((r) => r.args).find((a) => a.vpasid === vpasid && JSON.stringify(a).includes(String(p.src)));
    expect(request).toMatchObject({ vrid, vpasid });
    expect(JSON.stringify(request)).not.toMatch(/ppasid|ioasid|cookie|bdf/);
    const vmm = s.vmmGuestClient({ id, token });
    expect(await vmm.pageRequests()).toEqual([]);
    await guestCall(url, 'POST', '/v1/sva/unbind', { pid: p.pid, vrid });
  });

  it('ENQCMDS from the guest kernel: the descriptor’s vPASID is translated by KVM too; an unbound one exits → #GP', async () => {
    const s = stack();
    const { url, id, token } = world.a!;
    const vrid = await vridOf(url);
    const p = await processWithBuffers(url, 'kernel-work', 4096, (i) => i);
    // A raw ENQCMDS does not block on faults: the destination is touched first, so its page is there.
    await guestCall(url, 'PUT', `/v1/processes/${p.pid}/memory`, { gva: p.dst, data: Buffer.alloc(16).toString('base64') });
    const { vpasid } = await guestCall<{ vpasid: number }>(url, 'POST', '/v1/sva/bind', { pid: p.pid, vrid });
    const enqcmds = (pasid: number): Promise<{ status: number; body: unknown }> =>
      http('POST', `${s.vmmApp.url}/v1/vms/${id}/vcpus/0/enqcmds`, {
        token,
        body: { vrid, pasid, privileged: true, descriptor: { op: 'fill', dst: p.dst, length: 4096, pattern: 0x0101010101, completion: p.src } },
      });
    expect((await enqcmds(vpasid + 100)).body).toEqual({ result: 'gp', reason: 'vpasid-unmapped' });
    expect((await enqcmds(vpasid)).body).toEqual({ result: 'accepted' });
    const record = await eventually(async () => {
      const r = await readGuest(url, p.pid, p.src, 32);
      return r[0] !== 0 ? r : undefined;
    });
    expect(record[0]).toBe(1);
    expect((await readGuest(url, p.pid, p.dst, 16)).toString('hex')).toBe('01010101010000000101010101000000');
    await guestCall(url, 'POST', '/v1/sva/unbind', { pid: p.pid, vrid });
  });

  it('killing the guest tears its bindings down: the pPASID returns to the host pool', async () => {
    const s = stack();
    const { url } = world.b!;
    const vrid = await vridOf(url);
    const { pid } = await guestCall<{ pid: number }>(url, 'POST', '/v1/processes', { name: 'victim' });
    const t = newTraceparent();
    await guestCall(url, 'POST', '/v1/sva/bind', { pid, vrid }, t.traceparent);
    const ppasid = await ppasidOfTrace(s.host.url, t.traceId);
    expect(await pasidState(s.host.url, ppasid)).toBe('allocated');
    const guest = s.guests.find((g) => g.url === url)!;
    guest.signal('SIGKILL');
    await guest.exited;
    await eventually(async () => ((await pasidState(s.host.url, ppasid)) === 'free' ? true : undefined), 5000, `pPASID ${ppasid} freed`);
    const vmView = await http('GET', `${s.vmmApp.url}/v1/vms/${world.b!.id}`, { token: world.b!.token });
    expect(vmView.body).toMatchObject({ state: 'running', guestAttached: false });
    expect((await pool(s.host.url)).parked).toBe(0);
  });
});
