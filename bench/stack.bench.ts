import { HostKernelClient } from '../libs/shared/src/http/host-kernel.client';
import { RestClient } from '../libs/shared/src/http/rest-client';
import { AUDIT, http, newTraceparent, Stack } from '../test/harness/stack';
import { httpHopFloor, sqliteInsertFloor } from './floors';
import { type BenchRow, time } from './table';

import { IA32_PASID_VALID as VALID } from '../libs/shared/src/x86/msr.constants';

async function hostProcess(stack: Stack, comm: string): Promise<{ pid: number; k: HostKernelClient }> {
  const p = await stack.hostClient().createProcess(comm);
  return { pid: p.pid, k: new HostKernelClient(new RestClient({ baseUrl: stack.host.url, app: 'vmm', token: p.token })) };
}

/** Issue 3: alloc → bind → allow → disallow → destroy over REST, beside 5 × (hop + insert). */
export async function restCycleRows(stack: Stack, hopUs: number, insertUs: number, n = 300): Promise<BenchRow[]> {
  const { k } = await hostProcess(stack, 'cycle');
  const fd = await k.openIoasid();
  const dev = await k.openDevice('0000:6b:01.0');
  const t = await time(n, async () => {
    const p = await k.alloc(fd);
    await k.bindPgtbl(fd, p, { kind: 'mm' });
    await k.allowIoasid(dev, { ioasidFd: fd, ioasid: p, mode: 'pasid' });
    await k.disallowIoasid(dev, { ioasidFd: fd, ioasid: p });
    await k.destroy(fd, p);
  });
  return [
    {
      name: 'ioasid cycle alloc→…→destroy (REST, 5 calls)',
      value: t.perOpUs,
      unit: 'µs/cycle',
      floorName: '5 × (node:http hop + sqlite insert)',
      floor: 5 * (hopUs + insertUs),
      note: `p50 ${t.p50Us.toFixed(0)} µs, p99 ${t.p99Us.toFixed(0)} µs`,
    },
  ];
}

/** Issue 4: a host process's ENQCMD (noop) over REST, beside the journaled REST no-op measured in the same run. */
export async function restEnqcmdRows(stack: Stack, noopUs: number, n = 1000): Promise<BenchRow[]> {
  const { pid, k } = await hostProcess(stack, 'enqcmd');
  const buf = await k.mmap(pid, 4096);
  // Touched, so the completion records land: a device reaches an untouched page only through a page request.
  await k.writeMemory(pid, buf, Buffer.alloc(4096));
  const fd = await k.openIoasid();
  const p = await k.alloc(fd);
  await k.bindPgtbl(fd, p, { kind: 'mm' });
  const dev = await k.openDevice('0000:6a:01.0');
  await k.allowIoasid(dev, { ioasidFd: fd, ioasid: p, mode: 'pasid' });
  await k.wrmsr(pid, VALID + p);
  let retries = 0;
  const t = await time(n, async (i) => {
    const r = await k.enqcmd(pid, dev, { op: 'noop', completion: buf + (i % 128) * 32 });
    if (r.result === 'retry') retries += 1;
    else if (r.result !== 'accepted') throw new Error(`enqcmd: ${JSON.stringify(r)}`);
  });
  await k.killProcess(pid);
  return [
    {
      name: 'ENQCMD noop, host process (REST)',
      value: t.perOpUs,
      unit: 'µs/op',
      floorName: 'journaled REST no-op',
      floor: noopUs,
      note: `p50 ${t.p50Us.toFixed(0)} µs, p99 ${t.p99Us.toFixed(0)} µs, ZF=1 ${retries}/${n}`,
    },
  ];
}

interface Row {
  app: string;
  traceId: string;
}

/**
 * Issue 5: guest-visible SVA bind + unbind latency and throughput with 1, 4 and 16 concurrent guest
 * processes, beside the same number of bare node:http hops and SQLite commits (counted from the
 * journals of one bind + unbind: every journal row is a commit, every VMM/host row one incoming hop).
 */
export async function guestBindRows(stack: Stack, hopUs: number, insertUs: number): Promise<BenchRow[]> {
  const vm = await stack.createVm({ name: 'bench', memoryMiB: 64, vcpus: 1, devices: ['0000:6a:01.0'] });
  const guest = await stack.startGuest(vm);
  const call = async <T>(method: string, path: string, body?: unknown, traceparent?: string): Promise<T> => {
    const res = await http(method, `${guest.url}${path}`, { body, traceparent });
    if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${res.text}`);
    return res.body as T;
  };
  const status = await call<{ machine: { devices: Array<{ vrid: number }> } }>('GET', '/v1/status');
  const vrid = status.machine.devices[0].vrid;
  const pids: number[] = [];
  for (let i = 0; i < 16; i++) pids.push((await call<{ pid: number }>('POST', '/v1/processes', { name: `b${i}` })).pid);
  const cycle = async (pid: number, traceparent?: string): Promise<void> => {
    await call('POST', '/v1/sva/bind', { pid, vrid }, traceparent);
    await call('POST', '/v1/sva/unbind', { pid, vrid }, traceparent);
  };
  // Count what one bind + unbind costs in hops and commits, from the journals.
  const t = newTraceparent();
  await cycle(pids[0], t.traceparent);
  const rows = (await http('GET', `${guest.url}/v1/audit/events?trace=${t.traceId}&federate=true`, { token: AUDIT })).body as Row[];
  const commits = rows.length;
  const hops = rows.filter((r) => r.app !== 'guest').length + 1;
  const floorUs = hops * hopUs + commits * insertUs;
  const out: BenchRow[] = [];
  for (const concurrency of [1, 4, 16]) {
    const perWorker = Math.max(4, Math.floor(64 / concurrency));
    const latencies: number[] = [];
    const start = process.hrtime.bigint();
    await Promise.all(
      pids.slice(0, concurrency).map(async (pid) => {
        for (let i = 0; i < perWorker; i++) {
          const t0 = process.hrtime.bigint();
          await cycle(pid);
          latencies.push(Number(process.hrtime.bigint() - t0) / 1000);
        }
      }),
    );
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    latencies.sort((a, b) => a - b);
    const p50 = latencies[Math.floor(latencies.length * 0.5)];
    const p99 = latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.99))];
    out.push({
      name: `guest bind+unbind, ${concurrency} process${concurrency > 1 ? 'es' : ''}`,
      value: p50,
      unit: 'µs p50',
      floorName: `${hops} hops + ${commits} commits`,
      floor: floorUs,
      note: `p99 ${p99.toFixed(0)} µs, ${(latencies.length / seconds).toFixed(1)} cycles/s`,
    });
  }
  return out;
}

export async function floors(n = 2000): Promise<{ hopUs: number; insertUs: number }> {
  const hop = await httpHopFloor(n);
  const insert = await sqliteInsertFloor(n);
  return { hopUs: hop.perOpUs, insertUs: insert.perOpUs };
}
