import { spawn } from 'node:child_process';
import { decodeCompletion } from '../libs/shared/src/dsa/descriptor';
import { holdLifeline, type LifelineEvent } from '../libs/shared/src/http/lifeline';
import { IA32_PASID_VALID } from '../libs/shared/src/x86/msr.constants';
import { pool } from './harness/guest';
import { useStack } from './harness/hooks';
import { eventually, HOST_ADMIN, http } from './harness/stack';

const DSA = '0000:6a:01.0';
const stack = useStack(async (s) => {
  await s.startHost();
});

async function expectErrno(p: Promise<unknown>, errno: string): Promise<void> {
  await expect(p).rejects.toMatchObject({ errno });
}

describe('the host kernel over REST', () => {
  it('full lifecycle: alloc → bind → map → allow → disallow → destroy; a destroyed-but-allowed PASID stays parked until disallow', async () => {
    const s = stack();
    const before = await pool(s.host.url);
    const { pid, k } = await s.hostProcess('lifecycle');
    const hva = await k.mmap(pid, 64 * 1024);
    const fd = await k.openIoasid();
    expect(fd).toBe(3);
    const gpa = await k.alloc(fd);
    expect(await k.info(fd, gpa)).toMatchObject({ ioasid: gpa, state: 'allocated', pgtbl: null, refs: 1 });
    // The page table comes first: an allocated ioasid cannot be allowed on a device.
    const dev = await k.openDevice(DSA);
    await expectErrno(k.allowIoasid(dev, { ioasidFd: fd, ioasid: gpa, mode: 'rid' }), 'EINVAL');
    await k.bindPgtbl(fd, gpa, { kind: 'iova' });
    await expectErrno(k.bindPgtbl(fd, gpa, { kind: 'iova' }), 'EBUSY');
    expect(await k.map(fd, gpa, { iova: 0, hva, length: 64 * 1024, read: true, write: true })).toBe(0);
    await expectErrno(k.map(fd, gpa, { iova: 0x1000, hva, length: 4096, read: true, write: true }), 'EEXIST');
    const p = await k.alloc(fd);
    await k.bindPgtbl(fd, p, { kind: 'nested', parent: gpa });
    await k.allowIoasid(dev, { ioasidFd: fd, ioasid: p, mode: 'pasid' });
    await expectErrno(k.allowIoasid(dev, { ioasidFd: fd, ioasid: p, mode: 'pasid' }), 'EBUSY');
    expect(await k.info(fd, p)).toMatchObject({ state: 'bound', refs: 2, holders: { devices: [`${DSA}/pasid`], kvm: [], children: [] } });
    expect((await k.info(fd, gpa)).holders.children).toEqual([p]);
    await expectErrno(k.destroy(fd, gpa), 'EBUSY');

    // DESTROY with the device still allowed: invisible, parked, not reusable.
    await k.destroy(fd, p);
    await expectErrno(k.info(fd, p), 'ENOENT');
    expect(await s.hostAdmin().pasidInfo(p)).toMatchObject({ pasid: p, state: 'parked' });
    const q = await k.alloc(fd);
    expect(q).not.toBe(p);
    await k.destroy(fd, q);
    // DISALLOW drops the last reference: the PASID returns to the pool.
    await k.disallowIoasid(dev, { ioasidFd: fd, ioasid: p });
    expect(await s.hostAdmin().pasidInfo(p)).toMatchObject({ state: 'free' });
    // Disallowing a route that does not exist is a no-op (journaled), not an error.
    await k.disallowIoasid(dev, { ioasidFd: fd, ioasid: p });
    expect(await k.unmap(fd, gpa, { all: true })).toBe(64 * 1024);
    await k.destroy(fd, gpa);
    expect(await k.list(fd)).toEqual([]);
    expect(await pool(s.host.url)).toEqual(before);
    await k.killProcess(pid);
  });

  it('two processes cannot touch each other’s fds, and an fd of the wrong kind is EBADF', async () => {
    const s = stack();
    const a = await s.hostProcess('a');
    const b = await s.hostProcess('b');
    const fdA = await a.k.openIoasid();
    const ioasidA = await a.k.alloc(fdA);
    // b has no fd 3 yet: a's fd number means nothing in b's table.
    await expectErrno(b.k.alloc(fdA), 'EBADF');
    await expectErrno(b.k.info(fdA, ioasidA), 'EBADF');
    await expectErrno(b.k.closeFd(fdA), 'EBADF');
    const fdB = await b.k.openIoasid();
    expect(fdB).toBe(fdA); // lowest free number, per process
    await expectErrno(b.k.info(fdB, ioasidA), 'ENOENT'); // not owned by b's fd
    await expectErrno(b.k.destroy(fdB, ioasidA), 'ENOENT');
    const dev = await a.k.openDevice('0000:6b:01.0');
    await expectErrno(b.k.openDevice('0000:6b:01.0'), 'EBUSY');
    await expectErrno(a.k.alloc(dev), 'EBADF'); // a device fd where an ioasid fd is wanted
    await a.k.closeFd(fdA);
    await expectErrno(a.k.alloc(fdA), 'EBADF'); // closed
    expect(await s.hostAdmin().pasidInfo(ioasidA)).toMatchObject({ state: 'free' });
    await a.k.killProcess(a.pid);
    await b.k.killProcess(b.pid);
  });

  it('SIGKILL of the owning process releases every PASID it held (admin view of the pool)', async () => {
    const s = stack();
    const before = await pool(s.host.url);
    // A separate OS process owns the host process: it holds the lifeline and allocates, then dies.
    const script = `
      const base = ${JSON.stringify(s.host.url)};
      const j = (r) => r.text().then((t) => (t ? JSON.parse(t) : null));
      const call = (m, p, t, b) => fetch(base + p, { method: m, headers: { 'content-type': 'application/json', ...(t ? { authorization: 'Bearer ' + t } : {}) }, body: b ? JSON.stringify(b) : undefined }).then(j);
      (async () => {
        const { pid, token } = await call('POST', '/v1/processes', null, { comm: 'owner' });
        const res = await fetch(base + '/v1/processes/' + pid + '/lifeline', { headers: { authorization: 'Bearer ' + token } });
        res.body.getReader().read();
        const { fd } = await call('POST', '/v1/ioasid', token, {});
        const ids = [];
        for (let i = 0; i < 8; i++) ids.push((await call('POST', '/v1/ioasid/' + fd + '/ioasids', token, {})).ioasid);
        await call('POST', '/v1/ioasid/' + fd + '/ioasids/' + ids[0] + '/pgtbl', token, { kind: 'iova' });
        const { fd: dev } = await call('POST', '/v1/vfio/devices/0000:6a:01.0/open', token, {});
        await fetch(base + '/v1/vfio/' + dev + '/allow-ioasid', { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer ' + token }, body: JSON.stringify({ ioasidFd: fd, ioasid: ids[0], mode: 'pasid' }) });
        await call('DELETE', '/v1/ioasid/' + fd + '/ioasids/' + ids[0], token);
        console.log(JSON.stringify({ pid, ids }));
        setInterval(() => {}, 1000);
      })();`;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const line = await new Promise<string>((resolve, reject) => {
      child.stdout.once('data', (d: Buffer) => resolve(d.toString()));
      child.once('exit', (code) => reject(new Error(`the owner script exited (${code}) before it was set up`)));
    });
    const { pid, ids } = JSON.parse(line) as { pid: number; ids: number[] };
    expect((await pool(s.host.url)).allocated - before.allocated).toBe(7);
    expect(await s.hostAdmin().pasidInfo(ids[0])).toMatchObject({ state: 'parked' });
    child.kill('SIGKILL');
    await eventually(async () => ((await pool(s.host.url)).allocated === before.allocated ? true : undefined), 5000, 'pool released');
    expect(await pool(s.host.url)).toEqual(before);
    for (const id of ids) expect(await s.hostAdmin().pasidInfo(id)).toMatchObject({ state: 'free' });
    const proc = await http('GET', `${s.host.url}/v1/processes/${pid}`, { token: HOST_ADMIN });
    expect(proc.body).toMatchObject({ state: 'exited', fds: [] });
  });

  it('host SVA: ENQCMD memmove between two buffers of a host process moves the bytes and writes the completion record', async () => {
    const s = stack();
    const { pid, k, token } = await s.hostProcess('sva');
    const buf = await k.mmap(pid, 3 * 4096);
    const src = buf;
    const dst = buf + 4096;
    const completion = buf + 8192;
    const bytes = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 13) & 0xff));
    // The process touches its buffers first: without block-on-fault a device reaches only present pages.
    await k.writeMemory(pid, buf, Buffer.alloc(3 * 4096));
    await k.writeMemory(pid, src, bytes);
    const fd = await k.openIoasid();
    const p = await k.alloc(fd);
    await k.bindPgtbl(fd, p, { kind: 'mm' });
    const dev = await k.openDevice(DSA);
    await k.allowIoasid(dev, { ioasidFd: fd, ioasid: p, mode: 'pasid' });
    // IA32_PASID not valid yet: #GP, nothing submitted.
    expect(await k.enqcmd(pid, dev, { op: 'memmove', src, dst, length: 4096, completion })).toMatchObject({ result: 'gp', reason: 'ia32-pasid-invalid' });
    await k.wrmsr(pid, IA32_PASID_VALID + p);
    expect(await k.enqcmd(pid, dev, { op: 'memmove', src, dst, length: 4096, completion })).toEqual({ result: 'accepted' });
    const record = await eventually(async () => {
      const c = decodeCompletion(await k.readMemory(pid, completion, 32));
      return c.status !== 0 ? c : undefined;
    });
    expect(record).toMatchObject({ status: 1, bytesCompleted: 4096 });
    expect((await k.readMemory(pid, dst, 4096)).equals(bytes)).toBe(true);

    // A misbehaving device DMAs where the process has nothing mapped: a fault record, delivered on the owner's lifeline.
    const events: LifelineEvent[] = [];
    const lifeline = holdLifeline(k.lifelineUrl(pid), { app: 'operator', token, onEvent: (e) => events.push(e) });
    await lifeline.opened;
    const dma = await http('POST', `${s.host.url}/v1/hw/devices/${DSA}/dma`, { token: HOST_ADMIN, body: { pasid: p, address: 0x7000_0000_0000, length: 64, write: true, data: Buffer.alloc(64, 1).toString('base64') } });
    expect(dma.status).toBe(201);
    expect(dma.body).toMatchObject({ fault: { bdf: DSA, pasid: p, access: 'write' } });
    const faults = (await http('GET', `${s.host.url}/v1/hw/iommu/faults`, { token: HOST_ADMIN })).body as Array<{ address: number }>;
    expect(faults.at(-1)).toMatchObject({ address: 0x7000_0000_0000 });
    await eventually(async () => (events.some((e) => e.event === 'fault') ? true : undefined), 5000, 'fault event on the lifeline');
    lifeline.close();
  });

  it('a stalled device: a full queue answers ZF=1, and a descriptor queued when its PASID is disallowed never writes afterwards', async () => {
    const s = stack();
    const { pid, k } = await s.hostProcess('stall');
    const depth = (await k.listDevices()).find((d) => d.bdf === '0000:6b:01.0')!.wqDepth;
    const buf = await k.mmap(pid, (depth + 3) * 4096);
    const fd = await k.openIoasid();
    const p = await k.alloc(fd);
    await k.bindPgtbl(fd, p, { kind: 'mm' });
    const dev = await k.openDevice('0000:6b:01.0');
    await k.allowIoasid(dev, { ioasidFd: fd, ioasid: p, mode: 'pasid' });
    await k.wrmsr(pid, IA32_PASID_VALID + p);
    await k.writeMemory(pid, buf, Buffer.alloc((depth + 3) * 4096));
    await k.writeMemory(pid, buf, Buffer.alloc(4096, 0xab));
    const engine = (running: boolean): Promise<unknown> => http('POST', `${s.host.url}/v1/hw/devices/0000:6b:01.0/engine`, { token: HOST_ADMIN, body: { running } });
    await engine(false);
    const dst = buf + 4096;
    const completionOf = (i: number): number => buf + 2 * 4096 + i * 32;
    for (let i = 0; i < depth; i++) expect(await k.enqcmd(pid, dev, { op: 'memmove', src: buf, dst, length: 4096, completion: completionOf(i) })).toEqual({ result: 'accepted' });
    expect(await k.enqcmd(pid, dev, { op: 'noop', completion: completionOf(depth) })).toMatchObject({ result: 'retry' });
    await k.disallowIoasid(dev, { ioasidFd: fd, ioasid: p });
    await engine(true);
    for (let i = 0; i < depth; i++) expect(decodeCompletion(await k.readMemory(pid, completionOf(i), 32)).status).toBe(4);
    expect((await k.readMemory(pid, dst, 4096)).equals(Buffer.alloc(4096))).toBe(true);
  });
});
