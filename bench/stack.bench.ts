// The REST rows of the bench contract over the three spawned apps: the ioasid life cycle of a host process
// (rest.bench.ts has the no-op and ENQCMD rows), and guest SVA bind + unbind with 1, 4 (one VM) and 16
// processes (one VM, and four VMs).
import { readFileSync } from 'node:fs';
import { AUDIT, newTraceparent, type Stack } from '../test/harness/stack';
import { BenchClient } from './client';
import { hostProcess } from './rest.bench';
import { type BenchRow, type Floors, time } from './table';

/** The bench's devices: the two defaults for the host rows, then one per VM of the 4-VM row. */
export const BENCH_DEVICES = ['0000:6a:01.0', '0000:6b:01.0', '0000:6c:01.0', '0000:6d:01.0', '0000:6e:01.0', '0000:6f:01.0'].map((bdf) => ({ bdf, pasidWidth: 20, wqDepth: 32 }));
const VM_DEVICES = BENCH_DEVICES.slice(2).map((d) => d.bdf);

async function pasidsAllocated(stack: Stack): Promise<number> {
  return (await stack.hostAdmin().pasidPool()).allocated;
}

/** rest.ioasid-cycle: alloc → bind → allow → disallow → destroy over REST, beside 5 × (hop + insert). */
export async function restCycleRows(stack: Stack, floors: Floors, n = 300): Promise<BenchRow[]> {
  const { k } = await hostProcess(stack, 'cycle');
  const fd = await k.openIoasid();
  const dev = await k.openDevice('0000:6b:01.0');
  const before = await pasidsAllocated(stack);
  const t = await time(n, async () => {
    const p = await k.alloc(fd);
    await k.bindPgtbl(fd, p, { kind: 'mm' });
    await k.allowIoasid(dev, { ioasidFd: fd, ioasid: p, mode: 'pasid' });
    await k.disallowIoasid(dev, { ioasidFd: fd, ioasid: p });
    await k.destroy(fd, p);
  });
  const after = await pasidsAllocated(stack);
  if (after !== before || (await k.list(fd)).length !== 0) throw new Error(`rest.ioasid-cycle left ${after - before} PASIDs allocated`);
  return [
    {
      id: 'rest.ioasid-cycle',
      name: 'ioasid cycle alloc→…→destroy (REST, 5 calls)',
      value: t.p50Us,
      unit: 'µs p50/cycle',
      floor: '5 × (hop + insert)',
      floorValue: 5 * (floors.hop + floors.insert),
      note: `mean ${t.perOpUs.toFixed(0)} µs, p99 ${t.p99Us.toFixed(0)} µs`,
    },
  ];
}

interface Guest {
  vrid: number;
  console: BenchClient;
  pids: number[];
}

/**
 * Untimed bind + unbind cycles per guest before the rows (see guestBindRows). 640 was not enough: after it, the
 * three guests that only warm up still spent 1.00 ms of CPU per cycle of the 16-process row against 0.70 ms for the
 * first guest, which the 1-process rows had warmed further; after 1,920 the four cost the same (0.59–0.70 ms).
 */
const WARM_CYCLES = 1920;
/** Untimed cycles of the first guest's timed process on its own, after WARM_CYCLES (its path with one request at a time). */
const ALONE_WARM_CYCLES = 160;

async function bootGuests(stack: Stack): Promise<Guest[]> {
  const guests: Guest[] = [];
  for (const [i, bdf] of VM_DEVICES.entries()) {
    const vm = await stack.createVm({ name: `bench${i}`, memoryMiB: 64, vcpus: 1, devices: [bdf] });
    const app = await stack.startGuest(vm);
    const console = new BenchClient(app.url);
    const status = await console.call<{ machine: { devices: Array<{ vrid: number }> } }>('GET', '/v1/status');
    const pids: number[] = [];
    for (let p = 0; p < 16; p++) pids.push((await console.call<{ pid: number }>('POST', '/v1/processes', { body: { name: `b${p}` } })).pid);
    guests.push({ vrid: status.machine.devices[0].vrid, console, pids });
  }
  return guests;
}

async function cycle(g: Guest, pid: number, traceparent?: string): Promise<void> {
  const { vpasid } = await g.console.call<{ vpasid: number }>('POST', '/v1/sva/bind', { body: { pid, vrid: g.vrid }, traceparent });
  if (!Number.isInteger(vpasid) || vpasid < 1) throw new Error(`bind answered vpasid ${vpasid}`);
  await g.console.call('POST', '/v1/sva/unbind', { body: { pid, vrid: g.vrid }, traceparent });
}

/** CPU time (user + system, ms) of each part of the stack: so far (cpuMs), or per cycle (Run.split). */
interface StackCpu {
  host: number;
  vmm: number;
  guests: number;
  driver: number;
}

function appCpuMs(app: { child: { pid?: number } } | undefined): number {
  try {
    const fields = readFileSync(`/proc/${app?.child.pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return 0; // not Linux, or the app is gone
  }
}

/** What each part has used so far: the apps from /proc (0 where it cannot be read), and this driver. */
function cpuMs(stack: Stack): StackCpu {
  const own = process.cpuUsage();
  return {
    host: appCpuMs(stack.host),
    vmm: appCpuMs(stack.vmm),
    guests: stack.guests.reduce((sum, g) => sum + appCpuMs(g), 0),
    driver: (own.user + own.system) / 1000,
  };
}

/** USER_HZ: /proc/<pid>/stat counts CPU time in 1/100 s on every Linux this runs on. */
const CLOCK_TICKS = 100;

interface Run {
  p50: number;
  p99: number;
  perSecond: number;
  cycles: number;
  /** CPU of all the apps and the driver per cycle (ms), and how many cores that kept busy on average. */
  cpuPerCycleMs: number;
  cores: number;
  /** The same CPU per cycle, by part. */
  split: StackCpu;
}

/** `workers` (guest, pid) pairs each running `perWorker` cycles at once: latencies, cycles/s and CPU. */
async function run(stack: Stack, workers: Array<[Guest, number]>, perWorker: number): Promise<Run> {
  const latencies: number[] = [];
  const cpu0 = cpuMs(stack);
  const start = process.hrtime.bigint();
  await Promise.all(
    workers.map(async ([g, pid]) => {
      for (let i = 0; i < perWorker; i++) {
        const t0 = process.hrtime.bigint();
        await cycle(g, pid);
        latencies.push(Number(process.hrtime.bigint() - t0) / 1000);
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const cpu1 = cpuMs(stack);
  const n = latencies.length;
  const split: StackCpu = { host: (cpu1.host - cpu0.host) / n, vmm: (cpu1.vmm - cpu0.vmm) / n, guests: (cpu1.guests - cpu0.guests) / n, driver: (cpu1.driver - cpu0.driver) / n };
  const cpuPerCycleMs = split.host + split.vmm + split.guests + split.driver;
  latencies.sort((a, b) => a - b);
  return {
    p50: latencies[Math.floor(latencies.length * 0.5)],
    p99: latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.99))],
    perSecond: latencies.length / seconds,
    cycles: latencies.length,
    cpuPerCycleMs,
    cores: (cpuPerCycleMs * n) / 1000 / seconds,
    split,
  };
}

/**
 * stack.bind-unbind.*: guest-visible SVA bind + unbind with 1 process, 4 and 16 processes on one VM, and 16
 * processes on 4 VMs (4 each), beside hop + insert (and the hops and commits one cycle makes, counted from the
 * journals of one cycle: every journal row is a commit, every VMM/host row one incoming hop).
 */
export async function guestBindRows(stack: Stack, floors: Floors, cycles = 256): Promise<BenchRow[]> {
  const guests = await bootGuests(stack);
  const g0 = guests[0];
  const before = await pasidsAllocated(stack);
  const t = newTraceparent();
  await cycle(g0, g0.pids[0], t.traceparent);
  const rows = await new BenchClient(g0.console.url).call<Array<{ app: string }>>('GET', `/v1/audit/events?trace=${t.traceId}&federate=true`, { token: AUDIT });
  const commits = rows.length;
  const hops = rows.filter((r) => r.app !== 'guest').length + 1;
  // Every guest, VMM path and host path warm before anything is timed: without this, the 4-VM row timed the first
  // binds of three cold guest processes (JIT, first context and PASID-table entries) against a warm 1-process row.
  // Warm means compiled: on a fresh stack the 1-process p50 falls from about 25 ms to about 14.5 ms over the first
  // 600–700 cycles, while V8 compiles the apps' request paths with its optimising tier, and then stays there
  // (docs/performance.md). So every guest runs WARM_CYCLES (on 4 processes at once) before any row is timed, and the
  // first guest's timed process ALONE_WARM_CYCLES more on its own.
  const onFourVms = guests.flatMap((g) => g.pids.slice(0, 4).map((pid): [Guest, number] => [g, pid]));
  await run(stack, onFourVms, WARM_CYCLES / 4);
  await run(stack, [[g0, g0.pids[0]]], ALONE_WARM_CYCLES);
  const one = await run(stack, [[g0, g0.pids[0]]], cycles);
  const four = await run(stack, g0.pids.slice(0, 4).map((pid) => [g0, pid]), cycles / 4);
  // The 16-process rows run twice the cycles of the 1-process row, so each worker makes more than a handful.
  const sixteenOneVm = await run(stack, g0.pids.map((pid) => [g0, pid]), Math.max(1, (2 * cycles) / 16));
  const sixteen = await run(stack, onFourVms, Math.max(1, (2 * cycles) / 16));
  const after = await pasidsAllocated(stack);
  if (after !== before) throw new Error(`guest bind+unbind left ${after - before} PASIDs allocated`);
  for (const g of guests) await g.console.close();
  const hopInsert = floors.hop + floors.insert;
  const note = (r: Run): string =>
    `p99 ${r.p99.toFixed(0)} µs, ${r.perSecond.toFixed(1)} cycles/s (${r.cycles} cycles), CPU ${r.cpuPerCycleMs.toFixed(1)} ms/cycle (host ${r.split.host.toFixed(1)}, VMM ${r.split.vmm.toFixed(1)}, guests ${r.split.guests.toFixed(1)}, driver ${r.split.driver.toFixed(1)}) on ${r.cores.toFixed(2)} cores; one cycle = ${hops} hops + ${commits} commits = ${(hops * floors.hop + commits * floors.insert).toFixed(0)} µs of floor`;
  return [
    { id: 'stack.bind-unbind.1', name: 'guest bind+unbind, 1 process', value: one.p50, unit: 'µs p50', floor: 'hop + insert', floorValue: hopInsert, note: note(one) },
    { id: 'stack.bind-unbind.4', name: 'guest bind+unbind, 4 processes, 1 VM', value: four.p50, unit: 'µs p50', floor: 'hop + insert', floorValue: hopInsert, note: note(four) },
    {
      id: 'stack.bind-unbind.16x1vm',
      name: 'guest bind+unbind, 16 processes, 1 VM (cycles/s)',
      value: sixteenOneVm.perSecond,
      unit: 'cycles/s',
      floor: 'stack.bind-unbind.1 cycles/s',
      floorValue: one.perSecond,
      note: `p50 ${sixteenOneVm.p50.toFixed(0)} µs, ${note(sixteenOneVm)}`,
    },
    {
      id: 'stack.bind-unbind.16',
      name: 'guest bind+unbind, 16 processes on 4 VMs (cycles/s)',
      value: sixteen.perSecond,
      unit: 'cycles/s',
      floor: 'stack.bind-unbind.1 cycles/s',
      floorValue: one.perSecond,
      note: `p50 ${sixteen.p50.toFixed(0)} µs, ${note(sixteen)}`,
    },
  ];
}
