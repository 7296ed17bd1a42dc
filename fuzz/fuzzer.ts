// The campaign (DESIGN §11): several tenants at once — host processes, guest OSes on VMs, hostile guest kernels —
// and the world around them (the VMM killed and restarted, time advanced, devices stalled, DMA on any PASID),
// honest and malicious, with races between tenants scheduled from the seed; the invariants checked after every
// operation. At the first violation it stops; the caller records, minimizes and writes the scenario (report.ts).
// At the end every tenant is torn down and the host must hold nothing (leaks).
import type { DeviceConfig } from '../apps/host-kernel/src/kernel';
import type { StackConfig } from '../replay/recording';
import { Coverage } from './coverage';
import type { Violation } from '../replay/invariants/types';
import { call, type FuzzOp, type GenContext, op, step, type Tenant } from './op';
import { Prng } from './prng';
import { FuzzRun } from './run';
import { GuestTenant } from './tenants/guest';
import { HostTenant } from './tenants/host';
import { RogueTenant } from './tenants/rogue';
import { World } from './tenants/world';

/** Four accelerators with small work queues (ZF=1 retries happen), so VMs and host processes contend for them. */
export const FUZZ_DEVICES: DeviceConfig[] = ['6a', '6b', '6c', '6d'].map((bus) => ({ bdf: `0000:${bus}:01.0`, vendorId: 0x8086, deviceId: 0x0b25, pasidWidth: 20, wqDepth: 4 }));

export function fuzzConfig(seed: number): StackConfig {
  return { seed, memoryMiB: 512, devices: FUZZ_DEVICES, pasidQuota: 8, debugStallBefore: null };
}

export interface FuzzOptions {
  seed: number;
  ops: number;
  inProcess: boolean;
  tenants: number;
  /** Told after each operation: how many ran, and how many invariant checks so far. */
  onOp?: (done: number, checks: number) => void;
  /** RAM of every VM (small: the checks walk every frame). */
  vmMemoryMiB?: number;
  /** Stop on violations a known defect explains too (known.ts); by default they are counted and the run goes on. */
  strict?: boolean;
}

export interface FuzzOutcome {
  name: string;
  config: StackConfig;
  /** Every operation run, in order (the violating one last, when there is one). */
  ops: FuzzOp[];
  run: FuzzRun;
  coverage: Coverage;
  /** The first violations (those found after the same step), or none. */
  violations: Violation[];
  elapsedMs: number;
  /** What the host still held after every tenant was torn down (0 = nothing: the run leaked nothing). */
  leaks: number;
}

export const scenarioName = (seed: number): string => `fuzz-seed-${seed}`;

/** The tenants of a run: kinds round-robin from the seed (with 3 or more, every kind is there). */
export function makeTenants(rng: Prng, n: number): Tenant[] {
  const kinds = ['host', 'guest', 'rogue'] as const;
  const first = rng.int(3);
  return Array.from({ length: n }, (_v, i) => {
    const id = `t${i}`;
    const kind = i < 3 ? kinds[(first + i) % 3] : rng.pick(kinds);
    return kind === 'host' ? new HostTenant(id) : kind === 'guest' ? new GuestTenant(id) : new RogueTenant(id);
  });
}

/** Two single-step operations of different tenants at once: the first sent in the background, `turns` later the second. */
export function race(a: FuzzOp, b: FuzzOp, turns: number): FuzzOp {
  return op(`race/${a.name}|${b.name}`, 'world', [{ ...a.steps[0], background: true }, step('yield', turns), b.steps[0]], (answers) => {
    a.learn?.([answers[0]]);
    b.learn?.([answers[2]]);
  });
}

const raceable = (o: FuzzOp | null): o is FuzzOp => !!o && o.steps.length === 1 && ['call', 'delete-vm', 'create-vm'].includes(o.steps[0].kind) && !o.steps[0].as;

export async function fuzz(opts: FuzzOptions): Promise<FuzzOutcome> {
  const started = Date.now();
  const config = fuzzConfig(opts.seed);
  const name = scenarioName(opts.seed);
  const coverage = new Coverage();
  const run = new FuzzRun(config, opts.inProcess, name, coverage, opts.strict === true);
  const rng = new Prng(opts.seed);
  const tenants = makeTenants(rng, Math.max(1, opts.tenants));
  const world = new World();
  const ops: FuzzOp[] = [];
  let violations: Violation[] = [];
  let leaks = 0;
  let n = 0;
  const g: GenContext = {
    rng,
    snap: null as unknown as GenContext['snap'],
    vars: run.ctx.vars,
    fresh: () => `v${ops.length}_${n++}`,
    devices: config.devices,
    tenants,
    vmMemoryMiB: opts.vmMemoryMiB ?? 4,
  };
  const exec = async (o: FuzzOp): Promise<Violation[]> => {
    ops.push(o);
    const found = await run.run(o);
    if (o.steps.some((s) => s.kind === 'kill' && s.spec === 'vmm')) for (const t of tenants) t.vmmLost();
    return found;
  };
  try {
    violations = await run.start();
    while (ops.length < opts.ops && violations.length === 0) {
      g.snap = run.session.monitor?.snapshot as GenContext['snap'];
      const next = propose(g, tenants, world);
      if (!next) continue;
      violations = await exec(next);
      opts.onOp?.(ops.length, run.session.monitor?.checksRun ?? 0);
    }
    if (violations.length === 0 && !run.session.monitor?.snapshot?.vmm) violations = await exec(op('teardown/restart-vmm', 'world', [step('restart', 'vmm')]));
    if (violations.length === 0) {
      for (const o of teardown(run)) {
        violations = await exec(o);
        if (violations.length) break;
      }
      const s = run.session.monitor?.snapshot;
      if (s) leaks = s.host.ioasids.length + s.host.routes.length + s.host.vms.length + s.host.pins.length + s.host.pageRequests.length + s.host.openFiles + s.host.processes.filter((p) => p.state === 'running').length;
    }
  } finally {
    if (violations.length === 0) await run.close();
  }
  return { name, config, ops, run, coverage, violations, elapsedMs: Date.now() - started, leaks };
}

/** The next operation: a tenant's, the world's, or a race between two tenants' single-step operations. */
function propose(g: GenContext, tenants: Tenant[], world: World): FuzzOp | null {
  const { rng } = g;
  if (rng.chance(0.06)) return world.propose(g);
  if (tenants.length > 1 && rng.chance(0.06)) {
    const [a, b] = [rng.pick(tenants), rng.pick(tenants)];
    const x = a.propose(g);
    const y = b.propose(g);
    if (raceable(x) && raceable(y)) return race(x, y, rng.int(24));
    if (raceable(x) && rng.chance(0.3)) return race(x, op('world/kill-vmm', 'world', [step('kill', 'vmm')]), rng.int(24));
    return x ?? y;
  }
  return rng.pick(tenants).propose(g);
}

/** Every tenant gone (the VMM is up): every VM deleted, every host process the tenants made exited. */
function teardown(run: FuzzRun): FuzzOp[] {
  const out: FuzzOp[] = [];
  const snap = run.session.monitor?.snapshot;
  for (const vm of snap?.vmm?.vms ?? []) out.push(op('teardown/delete-vm', 'world', [step('delete-vm', { vm: vm.id })]));
  for (const p of snap?.host.processes ?? []) {
    if (p.state === 'running' && p.comm.startsWith('fz-')) out.push(op('teardown/exit', 'world', [call({ app: 'host-kernel', method: 'DELETE', path: `/v1/processes/${p.pid}`, body: null, principal: 'admin' })]));
  }
  return out;
}
