// Guest RAM without exits across real processes (docs/guest-memory.md): the host kernel backs the VMM's RAM mmap with
// a POSIX shared memory file, the VMM hands its guest the file's handle, and the guest maps it. What the guest stores
// is what the host's DMA reads, and the reverse, with the VMM's REST memory door and a fourth process mapping the
// file all seeing the same bytes. The files never outlive what owns them: a VM's goes with it, a killed VMM's go with
// the VM processes the host reaps when its lifeline drops, a host that shuts down removes its own, and a host killed
// outright leaves its files to the next host's boot, which removes them.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { openShm } from '../libs/shared/src/memory/shm-files';
import { guestCall, ppasidOfTrace, readGuest } from './harness/guest';
import { useStack } from './harness/hooks';
import { HOST_ADMIN, VMM_ADMIN, eventually, http, newTraceparent } from './harness/stack';

const DEV = '0000:6a:01.0';
const stack = useStack(async (s) => {
  await s.startHost();
  await s.startVmm();
});

/** The memory files in /dev/shm of the host kernel whose OS pid is `hostPid`. */
function filesOf(hostPid: number | undefined): string[] {
  return readdirSync('/dev/shm').filter((f) => f.startsWith(`ioasid-lab.host${hostPid}.`));
}

async function dma(hostUrl: string, body: { pasid: number; address: number; length: number; write: boolean; data?: string }): Promise<{ data?: string; fault?: unknown }> {
  const res = await http('POST', `${hostUrl}/v1/hw/devices/${DEV}/dma`, { token: HOST_ADMIN, body });
  if (res.status !== 201) throw new Error(`dma: ${res.status} ${res.text}`);
  return res.body as { data?: string; fault?: unknown };
}

describe('guest RAM is one memory file shared by the host, the VMM and the guest', () => {
  it('the guest’s stores are what the host’s DMA reads, the device’s writes are what the guest reads, and the VMM door and a mapper see them', async () => {
    const s = stack();
    const before = filesOf(s.host.child.pid);
    const vm = await s.createVm({ name: 'shared-ram', memoryMiB: 16, devices: [DEV] });
    const [file] = filesOf(s.host.child.pid).filter((f) => !before.includes(f));
    expect(file).toBeDefined();
    const url = (await s.startGuest(vm)).url;
    const vrid = (await guestCall<{ machine: { devices: Array<{ vrid: number }> } }>(url, 'GET', '/v1/status')).machine.devices[0].vrid;

    const { pid } = await guestCall<{ pid: number }>(url, 'POST', '/v1/processes', { name: 'app' });
    const { gva } = await guestCall<{ gva: number }>(url, 'POST', `/v1/processes/${pid}/mmap`, { length: 8192, populate: true });
    const pattern = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 131 + (i >> 5)) & 0xff));
    await guestCall(url, 'PUT', `/v1/processes/${pid}/memory`, { gva, data: pattern.toString('base64') });
    const bind = newTraceparent();
    await guestCall(url, 'POST', '/v1/sva/bind', { pid, vrid }, bind.traceparent);
    const ppasid = await ppasidOfTrace(s.host.url, bind.traceId);

    // The host's DMA, tagged with the pPASID: nested walk of the guest's page table in RAM, then the file's page.
    const read = await dma(s.host.url, { pasid: ppasid, address: gva, length: pattern.length, write: false });
    expect(Buffer.from(read.data ?? '', 'base64').equals(pattern)).toBe(true);
    const said = Buffer.from('written by the device');
    await dma(s.host.url, { pasid: ppasid, address: gva + 4096, length: said.length, write: true, data: said.toString('base64') });
    expect((await readGuest(url, pid, gva + 4096, said.length)).equals(said)).toBe(true);

    // A fourth process maps the file by name: the guest's bytes are in it, at the page the guest put them.
    const mapped = openShm(`/${file}`).bytes;
    const gpa = mapped.indexOf(pattern);
    expect(gpa % 4096).toBe(0);
    // The VMM's REST memory door reads and writes its own mapping of the same file.
    const vmm = s.vmmGuestClient(vm);
    expect((await vmm.readMemory(gpa, pattern.length)).equals(pattern)).toBe(true);
    await vmm.writeMemory(gpa + 8, Buffer.from('via the VMM'));
    expect(mapped.subarray(gpa + 8, gpa + 19).toString()).toBe('via the VMM');
    expect((await readGuest(url, pid, gva + 8, 11)).toString()).toBe('via the VMM');
    const again = await dma(s.host.url, { pasid: ppasid, address: gva + 8, length: 11, write: false });
    expect(Buffer.from(again.data ?? '', 'base64').toString()).toBe('via the VMM');
  });

  it('a VM’s RAM file goes with the VM', async () => {
    const s = stack();
    const before = filesOf(s.host.child.pid);
    const vm = await s.createVm({ name: 'short-lived', memoryMiB: 16 });
    const [file] = filesOf(s.host.child.pid).filter((f) => !before.includes(f));
    expect(existsSync(`/dev/shm/${file}`)).toBe(true);
    const res = await http('DELETE', `${s.vmmApp.url}/v1/vms/${vm.id}`, { token: VMM_ADMIN });
    expect(res.status).toBe(204);
    expect(existsSync(`/dev/shm/${file}`)).toBe(false);
  });

  it('a VMM killed outright takes its VMs’ RAM files with it: the host reaps the processes whose lifeline dropped', async () => {
    const s = stack();
    const before = filesOf(s.host.child.pid);
    await s.createVm({ name: 'vmm-dies', memoryMiB: 16 });
    const files = filesOf(s.host.child.pid);
    expect(files.filter((f) => !before.includes(f))).toHaveLength(1);
    s.vmmApp.signal('SIGKILL');
    await s.vmmApp.exited;
    // No call unmaps anything: the VMM is gone. The host's exit of each VM process (every VM of this VMM, the
    // earlier tests' too) is what unlinks its file.
    await eventually(async () => (files.some((f) => existsSync(`/dev/shm/${f}`)) ? undefined : true), 5000, 'every RAM file unlinked');
    expect(filesOf(s.host.child.pid)).toEqual([]);
    // A VMM with nothing to restore for the next test (a restored VM would map new files on this host).
    await s.startVmm({ DATA_DIR: join(s.dataDir, 'vmm-2') });
  });

  it('a host killed outright leaves its files to the next boot, which removes them; a host that shuts down removes its own', async () => {
    const s = stack();
    await s.createVm({ name: 'orphaned', memoryMiB: 16 });
    const killedPid = s.host.child.pid;
    const left = filesOf(killedPid);
    expect(left.length).toBeGreaterThan(0);
    await s.host.stop('SIGKILL');
    expect(left.filter((f) => existsSync(`/dev/shm/${f}`))).toEqual(left);

    await s.startHost();
    expect(left.filter((f) => existsSync(`/dev/shm/${f}`))).toEqual([]);

    // A shared mapping of a process on the new host: its file exists until the host shuts down (SIGTERM).
    const p = await s.hostProcess('holder');
    const res = await http('POST', `${s.host.url}/v1/processes/${p.pid}/mmap`, { token: p.token, body: { length: 8192, shared: true } });
    expect(res.status).toBe(201);
    const own = filesOf(s.host.child.pid);
    expect(own).toHaveLength(1);
    await s.host.stop('SIGTERM');
    expect(existsSync(`/dev/shm/${own[0]}`)).toBe(false);
  });
});
