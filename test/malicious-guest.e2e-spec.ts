import { encodePasidDirEntry, encodePasidEntry, Pgtt } from '../libs/shared/src/vtd/pasid-entry';
import { guestCall, hostRows, pool, ppasidOfTrace } from './harness/guest';
import { useStack } from './harness/hooks';
import { http, newTraceparent } from './harness/stack';
import type { VmmClient } from '../libs/shared/src/http/vmm.client';
import { IA32_PASID_VALID } from '../libs/shared/src/x86/msr.constants';

const DEV_A = '0000:6a:01.0';
const DEV_B = '0000:6b:01.0';
const DIR = 0x10000;
const TABLE = 0x11000;
const CR3 = 0x20000;
const QUOTA = 4;

interface Fault {
  vpasid: number;
  reason: string;
  code: number;
  errno: string;
}

const world: { rogue?: { id: number; token: string }; good?: { id: number; token: string; url: string } } = {};
const stack = useStack(async (s) => {
  await s.startHost();
  await s.startVmm({ PASID_QUOTA: String(QUOTA) });
  // The rogue VM has no guest app: the test is its (malicious) guest kernel, writing raw entries.
  world.rogue = await s.createVm({ name: 'rogue', memoryMiB: 16, devices: [DEV_A] });
  const good = await s.createVm({ name: 'good', memoryMiB: 16, devices: [DEV_B] });
  world.good = { ...good, url: (await s.startGuest(good)).url };
});

async function vrid(vmm: VmmClient): Promise<number> {
  return (await vmm.machine<{ devices: Array<{ vrid: number }> }>()).devices[0].vrid;
}

/** Writes a PASID directory entry and table entry for `vpasid` into the rogue guest's memory. */
async function writeEntry(vmm: VmmClient, vpasid: number, entry: { present: boolean; pgtt: number; flpm: number; flptr: number }): Promise<void> {
  const dir = Buffer.alloc(8);
  dir.writeBigUInt64LE(encodePasidDirEntry({ present: true, tableGpa: TABLE }));
  await vmm.writeMemory(DIR + (vpasid >> 6) * 8, dir);
  await vmm.writeMemory(TABLE + (vpasid & 0x3f) * 64, encodePasidEntry(entry));
}

/** Runs a refused request and checks that the host allocated nothing for it. */
async function refusedWithNothingOnHost(run: (traceparent: string) => Promise<unknown>): Promise<unknown> {
  const s = stack();
  const before = await pool(s.host.url);
  const t = newTraceparent();
  const out = await run(t.traceparent);
  const rows = await hostRows(s.host.url, t.traceId);
  expect(rows.filter((r) => r.operation === 'ioasid.alloc' && r.errno === null)).toEqual([]);
  expect(rows.filter((r) => r.operation === 'kvm.map_pasid' && r.errno === null)).toEqual([]);
  expect(await pool(s.host.url)).toEqual(before);
  return out;
}

async function invalidate(vmm: VmmClient, descriptors: unknown[], traceparent: string): Promise<{ status: number; body: { completed?: number; faults?: Fault[]; errno?: string } }> {
  const res = await http('POST', `${vmm.rest.baseUrl}/v1/vms/${vmm.vmId}/viommu/invalidate`, {
    token: vmm.rest.opts.token,
    traceparent,
    body: { descriptors },
  });
  return res as { status: number; body: { completed?: number; faults?: Fault[]; errno?: string } };
}

describe('a malicious guest cannot get anything mapped on the host', () => {
  beforeAll(async () => {
    const vmm = stack().vmmGuestClient(world.rogue!);
    await vmm.setContext(await vrid(vmm), DIR);
  });

  it('an entry whose first-level pointer is outside guest RAM → fault, nothing mapped', async () => {
    const vmm = stack().vmmGuestClient(world.rogue!);
    await writeEntry(vmm, 5, { present: true, pgtt: Pgtt.FirstLevel, flpm: 0, flptr: 0x4000_0000 });
    const res = (await refusedWithNothingOnHost((tp) => invalidate(vmm, [{ type: 'pasid-cache', vpasid: 5 }, { type: 'wait' }], tp))) as Awaited<ReturnType<typeof invalidate>>;
    expect(res.status).toBe(201);
    expect(res.body.faults).toEqual([expect.objectContaining({ vpasid: 5, errno: expect.any(String) })]);
  });

  it.each([
    ['second-level', Pgtt.SecondLevel],
    ['nested', Pgtt.Nested],
    ['reserved type 7', 7],
  ])('a forbidden translation type (%s) → fault, nothing mapped', async (_name, pgtt) => {
    const vmm = stack().vmmGuestClient(world.rogue!);
    await writeEntry(vmm, 6, { present: true, pgtt, flpm: 0, flptr: CR3 });
    const res = (await refusedWithNothingOnHost((tp) => invalidate(vmm, [{ type: 'pasid-cache', vpasid: 6 }, { type: 'wait' }], tp))) as Awaited<ReturnType<typeof invalidate>>;
    expect(res.body.faults?.[0]).toMatchObject({ vpasid: 6 });
  });

  it.each([0, 2 ** 20])('vPASID %i is refused', async (vpasid) => {
    const vmm = stack().vmmGuestClient(world.rogue!);
    const res = (await refusedWithNothingOnHost((tp) => invalidate(vmm, [{ type: 'pasid-cache', vpasid }, { type: 'wait' }], tp))) as Awaited<ReturnType<typeof invalidate>>;
    // Either the batch is malformed (EINVAL) or the descriptor faults: never a mapping.
    if (res.status === 201) expect(res.body.faults?.length).toBeGreaterThan(0);
    else expect(res.body).toMatchObject({ errno: 'EINVAL' });
  });

  it('quota flooding stops at the per-VM quota with ENOSPC; another VM still binds', async () => {
    const s = stack();
    const vmm = s.vmmGuestClient(world.rogue!);
    const vpasids = Array.from({ length: QUOTA + 2 }, (_, i) => 10 + i);
    for (const v of vpasids) await writeEntry(vmm, v, { present: true, pgtt: Pgtt.PassThrough, flpm: 0, flptr: 0 });
    const t = newTraceparent();
    const res = await invalidate(vmm, [...vpasids.map((v) => ({ type: 'pasid-cache', vpasid: v })), { type: 'wait' }], t.traceparent);
    expect(res.status).toBe(201);
    const enospc = (res.body.faults ?? []).filter((f) => f.errno === 'ENOSPC');
    expect(enospc.map((f) => f.vpasid)).toEqual(vpasids.slice(QUOTA));
    const allocs = (await hostRows(s.host.url, t.traceId)).filter((r) => r.operation === 'ioasid.alloc' && r.errno === null);
    expect(allocs).toHaveLength(QUOTA);
    // The good VM is unaffected by the rogue one's quota.
    const g = world.good!;
    const st = await guestCall<{ machine: { devices: Array<{ vrid: number }> } }>(g.url, 'GET', '/v1/status');
    const { pid } = await guestCall<{ pid: number }>(g.url, 'POST', '/v1/processes', { name: 'fine' });
    const { vpasid } = await guestCall<{ vpasid: number }>(g.url, 'POST', '/v1/sva/bind', { pid, vrid: st.machine.devices[0].vrid });
    expect(vpasid).toBeGreaterThanOrEqual(1);
    // Clean the flood up again: clear the entries and invalidate.
    for (const v of vpasids) await writeEntry(vmm, v, { present: false, pgtt: 0, flpm: 0, flptr: 0 });
    await invalidate(vmm, [...vpasids.map((v) => ({ type: 'pasid-cache', vpasid: v })), { type: 'wait' }], newTraceparent().traceparent);
  });

  it('ENQCMD with a vPASID it never bound → #GP (VM exit), nothing submitted', async () => {
    const vmm = stack().vmmGuestClient(world.rogue!);
    await vmm.wrmsr(0, 'IA32_PASID', IA32_PASID_VALID + 999);
    expect(await vmm.enqcmd(0, await vrid(vmm), { op: 'noop', completion: 0x30000 })).toMatchObject({ result: 'gp', reason: 'vpasid-unmapped' });
  });

  it('a raw WRMSR of another VM’s pPASID reaches nothing: KVM translates it as this VM’s vPASID → #GP', async () => {
    const s = stack();
    const g = world.good!;
    const st = await guestCall<{ machine: { devices: Array<{ vrid: number }> } }>(g.url, 'GET', '/v1/status');
    const { pid } = await guestCall<{ pid: number }>(g.url, 'POST', '/v1/processes', { name: 'target' });
    const t = newTraceparent();
    await guestCall(g.url, 'POST', '/v1/sva/bind', { pid, vrid: st.machine.devices[0].vrid }, t.traceparent);
    const victim = await ppasidOfTrace(s.host.url, t.traceId);
    const vmm = s.vmmGuestClient(world.rogue!);
    await vmm.wrmsr(0, 'IA32_PASID', IA32_PASID_VALID + victim);
    expect(await vmm.enqcmd(0, await vrid(vmm), { op: 'noop', completion: 0x30000 })).toMatchObject({ result: 'gp' });
  });

  it('`wait` without a pasid-cache for a freshly written entry mirrors nothing: ENQCMD still #GPs', async () => {
    const vmm = stack().vmmGuestClient(world.rogue!);
    await writeEntry(vmm, 40, { present: true, pgtt: Pgtt.FirstLevel, flpm: 0, flptr: CR3 });
    const res = (await refusedWithNothingOnHost((tp) => invalidate(vmm, [{ type: 'wait' }], tp))) as Awaited<ReturnType<typeof invalidate>>;
    expect(res.body).toMatchObject({ completed: 1, faults: [] });
    await vmm.wrmsr(0, 'IA32_PASID', IA32_PASID_VALID + 40);
    expect(await vmm.enqcmd(0, await vrid(vmm), { op: 'noop', completion: 0x30000 })).toMatchObject({ result: 'gp', reason: 'vpasid-unmapped' });
    await writeEntry(vmm, 40, { present: false, pgtt: 0, flpm: 0, flptr: 0 });
  });

  it('a WRMSR with reserved bits is refused with EINVAL, and the answer names nothing of the host', async () => {
    const s = stack();
    const res = await http('POST', `${s.vmmApp.url}/v1/vms/${world.rogue!.id}/vcpus/0/wrmsr`, {
      token: world.rogue!.token,
      body: { msr: 'IA32_PASID', value: 0x4000_0001 },
    });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ errno: 'EINVAL', message: 'WRMSR refused by the host (EINVAL)' });
  });

  it('the guest-visible faults never name a host PASID', async () => {
    const s = stack();
    const vmm = s.vmmGuestClient(world.rogue!);
    const faults = await vmm.faults<Record<string, unknown>>();
    expect(faults.length).toBeGreaterThan(0);
    for (const f of faults) expect(Object.keys(f).sort()).not.toContain('ppasid');
  });
});
