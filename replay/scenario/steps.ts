// What each scenario step does: the REST request(s) it issues through the operator (so each is an input of the
// recording, as the same call by hand would be), an external event, or a check. `${name.field}` in any value
// is the saved answer of an earlier step (`as: name`).
import type { HttpInput } from '@app/shared/replay/input';
import type { JournalEvent } from '@app/shared/journal/journal';
import { formatTraceparent } from '@app/shared/trace';
import type { SeededStream } from '@app/shared/replay/seeded';
import { encodePasidDirEntry, encodePasidEntry } from '@app/shared/vtd/pasid-entry';
import type { Operator } from '../operator';
import type { StackResponse, Transport } from '../transport';
import type { Step } from './parse';

export class StepFailure extends Error {}

type Obj = Record<string, unknown>;

export interface StepContext {
  transport: Transport;
  operator: Operator;
  traces: SeededStream;
  vars: Map<string, unknown>;
  /** Every row journaled so far, by journal (wait-for looks here). */
  rows: Map<string, JournalEvent[]>;
}

/** `${a.b}` alone is the value itself; inside a longer string it is interpolated. */
export function resolve(v: unknown, vars: Map<string, unknown>): unknown {
  const lookup = (path: string): unknown => {
    const [head, ...rest] = path.split('.');
    if (!vars.has(head)) throw new StepFailure(`\${${path}}: no step saved "${head}" (as: ${head})`);
    let cur = vars.get(head);
    for (const k of rest) cur = (cur as Obj | undefined)?.[k];
    if (cur === undefined) throw new StepFailure(`\${${path}}: "${head}" has no ${rest.join('.')}`);
    return cur;
  };
  if (typeof v === 'string') {
    const whole = /^\$\{([\w.-]+)\}$/.exec(v);
    if (whole) return lookup(whole[1]);
    return v.replace(/\$\{([\w.-]+)\}/g, (_m, p: string) => String(lookup(p)));
  }
  if (Array.isArray(v)) return v.map((x) => resolve(x, vars));
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, resolve(x, vars)]));
  return v;
}

const num = (v: unknown, what: string): number => {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new StepFailure(`${what} must be an integer, got ${JSON.stringify(v)}`);
  return v;
};

/** Issues one REST input as the step's principal, with a trace of its own (seeded in deterministic mode). */
export function send(ctx: StepContext, input: Omit<HttpInput, 'kind'>, background = false): Promise<StackResponse> {
  const traceparent = formatTraceparent(ctx.traces.hex(16), ctx.traces.hex(8));
  return ctx.operator.http({ kind: 'http', ...input }, { traceparent, background });
}

const guest = (vm: number, method: string, path: string, body?: unknown): Omit<HttpInput, 'kind'> => ({ app: 'guest', vm, method, path, body: body ?? null, principal: 'none' });

/** The VM's first virtual RID (what the guest console binds by default). */
async function firstVrid(ctx: StepContext, vm: number): Promise<number> {
  const res = await ctx.transport.request({ app: 'vmm', method: 'GET', path: `/v1/vms/${vm}/machine`, token: ctx.operator.tokenOf('vmm', 'admin') });
  const devices = (res.body as { devices?: Array<{ vrid: number }> }).devices ?? [];
  if (!devices.length) throw new StepFailure(`vm ${vm} has no device to bind`);
  return devices[0].vrid;
}

/** Runs one step (not `expect`); answers the response its `expect` and `as` apply to. */
export async function runStep(ctx: StepContext, step: Step): Promise<StackResponse> {
  const s = resolve(step.spec, ctx.vars) as Obj;
  const vm = (): number => num(typeof s === 'object' && s !== null ? s.vm : s, 'vm');
  const pid = (): number => num(s.pid, 'pid');
  switch (step.kind) {
    case 'create-vm':
      return send(ctx, { app: 'vmm', method: 'POST', path: '/v1/vms', body: { memoryMiB: 16, vcpus: 1, devices: [], ...s }, principal: 'admin' });
    case 'delete-vm':
      return send(ctx, { app: 'vmm', method: 'DELETE', path: `/v1/vms/${vm()}`, body: null, principal: 'admin' });
    case 'boot-guest': {
      const mode = typeof s === 'object' && s !== null ? s.pageRequests : undefined;
      if (mode !== undefined && mode !== 'ignore' && mode !== 'handle') throw new StepFailure(`pageRequests takes handle or ignore, got ${String(mode)}`);
      await ctx.operator.boot(vm(), formatTraceparent(ctx.traces.hex(16), ctx.traces.hex(8)), mode === 'ignore' ? 'ignore' : undefined);
      return ctx.transport.request({ app: 'guest', vm: vm(), method: 'GET', path: '/v1/status' });
    }
    case 'process':
      return send(ctx, guest(vm(), 'POST', '/v1/processes', { name: s.name ?? 'p' }));
    case 'mmap':
      return send(ctx, guest(vm(), 'POST', `/v1/processes/${pid()}/mmap`, { length: s.length }));
    case 'munmap':
      return send(ctx, guest(vm(), 'POST', `/v1/processes/${pid()}/munmap`, { gva: s.gva, length: s.length }));
    case 'write': {
      const data = typeof s.data === 'string' ? s.data : Buffer.alloc(num(s.length, 'length'), num(s.pattern ?? 0, 'pattern')).toString('base64');
      return send(ctx, guest(vm(), 'PUT', `/v1/processes/${pid()}/memory`, { gva: s.gva, data }));
    }
    case 'bind':
    case 'unbind':
      return send(ctx, guest(vm(), 'POST', `/v1/sva/${step.kind}`, { pid: pid(), vrid: s.vrid ?? (await firstVrid(ctx, vm())) }), step.background);
    case 'submit':
      return send(ctx, guest(vm(), 'POST', `/v1/processes/${pid()}/submit`, { vrid: s.vrid ?? (await firstVrid(ctx, vm())), descriptor: s.descriptor, ...(s.vcpu !== undefined ? { vcpu: s.vcpu } : {}) }));
    case 'pasid-entry':
      return pasidEntry(ctx, vm(), s);
    case 'call':
      return send(ctx, { app: String(s.app), ...(s.vm !== undefined ? { vm: num(s.vm, 'vm') } : {}), method: String(s.method).toUpperCase(), path: String(s.path), body: s.body ?? null, principal: String(s.principal ?? 'none') }, step.background);
    case 'kill': {
      const target = String(s);
      const g = /^guest-(\d+)$/.exec(target);
      if (target !== 'vmm' && !g) throw new StepFailure(`kill takes vmm or guest-<vm>, got ${target}`);
      await ctx.transport.kill(g ? 'guest' : 'vmm', g ? Number(g[1]) : undefined);
      return { status: 200, body: null };
    }
    case 'restart':
      if (String(s) !== 'vmm') throw new StepFailure(`restart takes vmm, got ${String(s)}`);
      await ctx.transport.restart('vmm');
      return { status: 200, body: null };
    case 'advance':
      await ctx.transport.advance(num(s, 'advance'));
      return { status: 200, body: null };
    case 'wait-for':
      return { status: 200, body: await waitFor(ctx, s) };
    case 'yield':
      await yieldTurns(ctx.transport, num(s, 'yield'));
      return { status: 200, body: null };
  }
  throw new StepFailure(`step ${step.kind} cannot run`);
}

/**
 * Lets the stack run for `n` turns without waiting for it to go quiet (what a race between a background step and
 * the next one is scheduled by): `n` event-loop turns in process, where that is exact, `n` milliseconds over REST.
 */
async function yieldTurns(t: Transport, n: number): Promise<void> {
  if (t.kind === 'rest') return new Promise((r) => setTimeout(r, n));
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

/** A guest kernel's own PASID entry for `vpasid` (VT-d scalable mode), written raw through the VM's memory. */
async function pasidEntry(ctx: StepContext, vm: number, s: Obj): Promise<StackResponse> {
  const vpasid = num(s.vpasid, 'vpasid');
  const dir = Buffer.alloc(8);
  dir.writeBigUInt64LE(encodePasidDirEntry({ present: true, tableGpa: num(s.table, 'table') }));
  const entry = encodePasidEntry({ present: s.present !== false, pgtt: num(s.pgtt ?? 1, 'pgtt'), flpm: num(s.flpm ?? 0, 'flpm'), flptr: num(s.flptr ?? 0, 'flptr') });
  const put = (gpa: number, data: Buffer): Promise<StackResponse> =>
    send(ctx, { app: 'vmm', method: 'PUT', path: `/v1/vms/${vm}/memory`, body: { gpa, data: data.toString('base64') }, principal: `vm:${vm}` });
  const first = await put(num(s.dir, 'dir') + (vpasid >> 6) * 8, dir);
  return first.status >= 300 ? first : put(num(s.table, 'table') + (vpasid & 0x3f) * 64, entry);
}

/** Waits (quiescing) until a journal holds a row like `s`; a run on the in-process stack never needs to wait twice. */
async function waitFor(ctx: StepContext, s: Obj): Promise<JournalEvent> {
  for (let tries = 0; tries < 400; tries++) {
    await ctx.transport.quiesce();
    for (const [j, rows] of await ctx.transport.newRows()) ctx.rows.set(j, [...(ctx.rows.get(j) ?? []), ...rows]);
    const hit = (ctx.rows.get(String(s.journal)) ?? []).find((r) => r.operation === s.operation && (s.errno === undefined || r.errno === s.errno) && matches(r.args, s.args ?? {}) === null);
    if (hit) return hit;
  }
  throw new StepFailure(`no ${String(s.operation)} row in ${String(s.journal)} like ${JSON.stringify(s.args ?? {})}`);
}

/** null when `actual` has everything `expected` has (maps: a subset; lists: same length, element-wise); else where not. */
export function matches(actual: unknown, expected: unknown, path = ''): string | null {
  if (expected !== null && typeof expected === 'object') {
    if (Array.isArray(expected)) {
      if (!Array.isArray(actual) || actual.length !== expected.length) return `${path || 'value'}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`;
      for (let i = 0; i < expected.length; i++) {
        const m = matches(actual[i], expected[i], `${path}[${i}]`);
        if (m) return m;
      }
      return null;
    }
    if (actual === null || typeof actual !== 'object') return `${path || 'value'}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`;
    for (const [k, v] of Object.entries(expected)) {
      const m = matches((actual as Obj)[k], v, path ? `${path}.${k}` : k);
      if (m) return m;
    }
    return null;
  }
  return actual === expected ? null : `${path || 'value'}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`;
}
