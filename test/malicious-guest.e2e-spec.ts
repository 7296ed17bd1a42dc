import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodePasidDirEntry, encodePasidEntry, Pgtt } from '../libs/shared/src/vtd/pasid-entry';
import { VTD_FAULT_REASONS, type VtdFaultReason } from '../libs/shared/src/vtd/vtd.constants';
import { guestCall, hostRows, pool, ppasidOfTrace } from './harness/guest';
import { useStack } from './harness/hooks';
import { eventually, HOST_ADMIN, http, newTraceparent } from './harness/stack';
import type { VmmClient } from '../libs/shared/src/http/vmm.client';
import { IA32_PASID_VALID } from '../libs/shared/src/x86/msr.constants';

const DEV_A = '0000:6a:01.0';
const DEV_B = '0000:6b:01.0';
/** A third accelerator for a VM of one test's own (each device is opened by one VM at a time). */
const DEV_C = '0000:6c:01.0';
const DIR = 0x10000;
const TABLE = 0x11000;
const CR3 = 0x20000;
const QUOTA = 4;

interface Fault {
  seq: number;
  vrid: number | null;
  vpasid: number;
  reason: string;
  code: number;
  errno: string;
  address?: number;
}

/** The fault the vIOMMU reports for a VT-d reason: that reason's code and text from the one table. */
const vtd = (reason: VtdFaultReason) => ({ code: VTD_FAULT_REASONS[reason].code, reason: VTD_FAULT_REASONS[reason].text });

const world: { rogue?: { id: number; token: string }; good?: { id: number; token: string; url: string } } = {};
const stack = useStack(async (s) => {
  const devices = join(s.dataDir, 'devices.json');
  writeFileSync(devices, JSON.stringify([DEV_A, DEV_B, DEV_C].map((bdf) => ({ bdf, pasidWidth: 20, wqDepth: 32 }))));
  await s.startHost({ DEVICES: devices });
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
    // VT-d SPT.4: FLPTR must be a page of guest RAM, else the entry is invalid programming.
    expect(res.body.faults).toEqual([expect.objectContaining({ vrid: await vrid(vmm), vpasid: 5, errno: 'EINVAL', ...vtd('pasid-entry-invalid') })]);
  });

  it.each([
    ['second-level', Pgtt.SecondLevel],
    ['nested', Pgtt.Nested],
    ['reserved type 7', 7],
  ])('a forbidden translation type (%s) → fault, nothing mapped', async (_name, pgtt) => {
    const vmm = stack().vmmGuestClient(world.rogue!);
    await writeEntry(vmm, 6, { present: true, pgtt, flpm: 0, flptr: CR3 });
    const res = (await refusedWithNothingOnHost((tp) => invalidate(vmm, [{ type: 'pasid-cache', vpasid: 6 }, { type: 'wait' }], tp))) as Awaited<ReturnType<typeof invalidate>>;
    // This vIOMMU accepts PGTT 1 and 4 only: any other type is invalid programming of the entry (VT-d SPT.4).
    expect(res.body.faults).toEqual([expect.objectContaining({ vrid: await vrid(vmm), vpasid: 6, errno: 'EINVAL', ...vtd('pasid-entry-invalid') })]);
  });

  it.each([
    [0, 'rid-pasid-error'],
    [2 ** 20, 'pasid-too-large'],
  ] as const)('vPASID %i is refused with a fault (%s), the batch still completes', async (vpasid, reason) => {
    const vmm = stack().vmmGuestClient(world.rogue!);
    const res = (await refusedWithNothingOnHost((tp) => invalidate(vmm, [{ type: 'pasid-cache', vpasid }, { type: 'wait' }], tp))) as Awaited<ReturnType<typeof invalidate>>;
    // DESIGN §3: the VMM validates V's range like the rest of the entry, and a refusal is a fault of that
    // descriptor (concerning no single device), not a malformed batch: both descriptors complete.
    expect(res.status).toBe(201);
    expect(res.body).toEqual({ completed: 2, faults: [expect.objectContaining({ vrid: null, vpasid, errno: 'EINVAL', ...vtd(reason) })] });
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

  it('the guest-visible faults name no host PASID, pid or fd the host used for the VM', async () => {
    const s = stack();
    // Hold every low host PASID, so the witness's pPASID is above any number a fault field can carry
    // legitimately here (8-bit codes, vrid 8, seq): an equal value is then a leak, not a coincidence.
    const scratch = await s.hostProcess('pasid-hog');
    const hogFd = await scratch.k.openIoasid();
    while ((await scratch.k.alloc(hogFd)) < 0x100);
    // A VM of this test's own, so its fault log holds exactly the faults made here.
    const witness = await s.createVm({ name: 'witness', memoryMiB: 16, devices: [DEV_C] });
    const vmm = s.vmmGuestClient(witness);
    const vr = await vrid(vmm);
    await vmm.setContext(vr, DIR);
    // 1. a refused entry (second-level PGTT): a fault made by the vIOMMU itself
    await writeEntry(vmm, 4000, { present: true, pgtt: Pgtt.SecondLevel, flpm: 0, flptr: CR3 });
    await invalidate(vmm, [{ type: 'pasid-cache', vpasid: 4000 }, { type: 'wait' }], newTraceparent().traceparent);
    // 2. a mirrored pass-through vPASID whose DMA leaves guest RAM: a host IOMMU fault the VMM translates
    await writeEntry(vmm, 4001, { present: true, pgtt: Pgtt.PassThrough, flpm: 0, flptr: 0 });
    const bind = newTraceparent();
    expect((await invalidate(vmm, [{ type: 'pasid-cache', vpasid: 4001 }, { type: 'wait' }], bind.traceparent)).body).toEqual({ completed: 2, faults: [] });
    const ppasid = await ppasidOfTrace(s.host.url, bind.traceId);
    expect(ppasid).toBeGreaterThan(0xff);
    const beyondRam = 32 * 1024 * 1024;
    await vmm.wrmsr(0, 'IA32_PASID', IA32_PASID_VALID + 4001);
    expect(await vmm.enqcmd(0, vr, { op: 'fill', dst: beyondRam, length: 8, pattern: 0x41, completion: 0x30000 })).toEqual({ result: 'accepted' });
    const faults = await eventually(async () => {
      const f = await vmm.faults<Fault>();
      return f.length >= 2 ? f : undefined;
    }, 5000, 'the host DMA fault reaching the guest');
    const hostFault = ((await http('GET', `${s.host.url}/v1/hw/iommu/faults`, { token: HOST_ADMIN })).body as Array<{ bdf: string; pasid: number | null; address: number; reason: VtdFaultReason }>).find(
      (f) => f.bdf === DEV_C && f.pasid === ppasid,
    );
    expect(hostFault).toMatchObject({ address: beyondRam });
    expect(faults).toEqual([
      expect.objectContaining({ vrid: vr, vpasid: 4000, errno: 'EINVAL', ...vtd('pasid-entry-invalid') }),
      expect.objectContaining({ vrid: vr, vpasid: 4001, address: beyondRam, errno: 'EFAULT', ...vtd(hostFault!.reason) }),
    ]);

    // What the host really used for this VM: its pPASID, the owning process and every fd that process holds.
    const info = (await http('GET', `${s.host.url}/v1/hw/pasids?pasid=${ppasid}`, { token: HOST_ADMIN })).body as { state: string; owner: { pid: number; fd: number } };
    expect(info.state).toBe('allocated');
    const proc = (await http('GET', `${s.host.url}/v1/processes/${info.owner.pid}`, { token: HOST_ADMIN })).body as { fds: Array<{ fd: number }> };
    const hostIds = new Set<number>([ppasid, info.owner.pid, info.owner.fd, ...proc.fds.map((f) => f.fd)]);
    expect(proc.fds.length).toBeGreaterThanOrEqual(3); // ioasid, KVM VM, device
    const mentions = new RegExp(`\\b(${ppasid}|0x${ppasid.toString(16)})\\b`, 'i');
    for (const f of faults) {
      for (const [key, value] of Object.entries(f)) {
        // The one address is the guest-physical address the guest itself gave the device.
        if (key === 'address') expect(value).toBe(beyondRam);
        else if (typeof value === 'number') expect([key, value, hostIds.has(value)]).toEqual([key, value, false]);
        else if (typeof value === 'string') expect([key, value, mentions.test(value)]).toEqual([key, value, false]);
      }
    }
  });
});
