// The sequence the crash sweep cuts at every step: a VM is built, a guest boots on it, binds a process to the
// VM's device (SVA), submits a copy into memory it never touched (page requests round trip), unbinds, and the VM is
// deleted. Each phase runs in its own trace, chosen up front, so a stall point can name "the n-th call of this
// method in this phase" (libs/shared/src/debug/stall-knob.ts) and the calls a clean run makes are grouped by phase.
// The guest is reached through a console: a spawned guest app over HTTP (when the guest is what gets killed), or
// the same guest OS code in this process over the REST VmmPort (when only the VMM's calls matter: no spawn).
import type { DataSource } from 'typeorm';
import { GuestApp } from '../../../apps/guest/src/guest.app';
import { RestClient } from '../../../libs/shared/src/http/rest-client';
import { VmmClient } from '../../../libs/shared/src/http/vmm.client';
import { formatTraceparent, newSpanId, newTraceId, runInTrace } from '../../../libs/shared/src/trace';
import { openJournal } from '../../../stack/in-process-host';
import type { AppProcess } from '../apps';
import { eventually, http, VMM_ADMIN } from '../stack';

export const PHASES = ['build', 'boot', 'bind', 'pr', 'unbind', 'delete'] as const;
export type Phase = (typeof PHASES)[number];
export type Traces = Record<Phase, string>;

export const DEVICE = '0000:6a:01.0';
export const VM_SPEC = { name: 'sweep', memoryMiB: 16, vcpus: 1, devices: [DEVICE] };
const PAGE = 4096;
/** The copy of the page-request phase: its source written by the guest, its destination never touched. */
const COPY = 2 * PAGE;

export const newTraces = (): Traces => Object.fromEntries(PHASES.map((p) => [p, newTraceId()])) as Traces;
export const traceparent = (traceId: string): string => formatTraceparent(traceId, newSpanId());

export interface Vm {
  id: number;
  token: string;
}

/** A guest's console, however it is reached; every call names the trace it runs in. */
export interface Console {
  vrid: number;
  call<T>(trace: string, method: string, path: string, body?: unknown): Promise<T>;
  stop(): Promise<void>;
}

async function ok<T>(res: Promise<{ status: number; body: unknown; text: string }>, what: string): Promise<T> {
  const r = await res;
  if (r.status >= 300) throw new Error(`${what}: ${r.status} ${r.text}`);
  return r.body as T;
}

/** The console of a spawned guest app (already booted: it boots before READY). */
export async function spawnedConsole(guest: AppProcess): Promise<Console> {
  const status = await ok<{ machine: { devices: Array<{ vrid: number }> } }>(http('GET', `${guest.url}/v1/status`), 'guest status');
  return {
    vrid: status.machine.devices[0].vrid,
    call: (trace, method, path, body) => ok(http(method, `${guest.url}${path}`, { body, traceparent: traceparent(trace) }), `guest ${method} ${path}`),
    stop: async () => void (await guest.stop('SIGKILL')),
  };
}

/** The guest OS code in this process over the REST VmmPort, booted in trace `bootTrace`; its console routes are called directly. */
export async function inProcessConsole(vmmUrl: string, vm: Vm, bootTrace: string): Promise<Console> {
  const { ds, journal } = await openJournal('guest');
  const vmm = new VmmClient(new RestClient({ baseUrl: vmmUrl, app: 'guest', token: vm.token, clock: journal.clock }), vm.id);
  let lost = false;
  const guest = new GuestApp({ journal, vmm, vmId: vm.id, bootTraceparent: traceparent(bootTrace), onVmmLost: () => void (lost = true) });
  const close = async (booted: boolean): Promise<void> => {
    guest.shutdown();
    if ((ds as DataSource).isInitialized) await ds.destroy();
    if (!booted) return;
    // The VMM learns of the shutdown when the lifeline's stream closes: until then the VM has a guest attached,
    // and a guest booted on it now is refused (EBUSY). A stop ends when the VMM has let go of this one.
    await untilDetached(vmmUrl, vm.id);
  };
  try {
    await guest.boot();
  } catch (err) {
    await close(false);
    throw err;
  }
  const routes: Record<string, (b: Record<string, unknown>, pid: number) => Promise<unknown>> = {
    'POST /v1/processes': (b) => guest.createProcess(b.name as string),
    'POST /v1/processes/:pid/mmap': (b, pid) => guest.mmap(pid, b.length as number),
    'PUT /v1/processes/:pid/memory': (b, pid) => guest.writeMemory(pid, b.gva as number, Buffer.from(b.data as string, 'base64')),
    'POST /v1/sva/bind': (b) => guest.bind(b.pid as number, b.vrid as number),
    'POST /v1/sva/unbind': (b) => guest.unbind(b.pid as number, b.vrid as number),
    'POST /v1/processes/:pid/submit': (b, pid) => guest.submit(pid, b as never),
  };
  return {
    vrid: guest.status().machine?.devices[0].vrid as number,
    call: <T>(trace: string, method: string, path: string, body?: unknown): Promise<T> => {
      if (lost) return Promise.reject(new Error('the guest lost its VMM'));
      const pid = Number(/\/processes\/(\d+)/.exec(path)?.[1] ?? NaN);
      const route = routes[`${method} ${path.replace(/\/processes\/\d+/, '/processes/:pid')}`];
      if (!route) throw new Error(`no console route ${method} ${path}`);
      return runInTrace({ traceId: trace, spanId: null, caller: null }, () => route((body ?? {}) as Record<string, unknown>, pid)) as Promise<T>;
    },
    stop: () => close(true),
  };
}

/** Until the VMM says VM `id` has no guest attached (or the VMM is gone, or the VM: nothing is attached then). */
export async function untilDetached(vmmUrl: string, id: number): Promise<void> {
  await eventually(
    async () => {
      const r = await http('GET', `${vmmUrl}/v1/vms/${id}`, { token: VMM_ADMIN }).catch(() => null);
      return !r || r.status === 404 || (r.status === 200 && (r.body as { guestAttached: boolean }).guestAttached === false) ? true : undefined;
    },
    10_000,
    `VM ${id} without a guest attached at the VMM`,
  );
}

/** How far a run got: filled as it goes, so a run cut by a kill still says what exists. */
export interface FlowState {
  vm?: Vm;
  console?: Console;
  phase?: Phase;
  /** The phase's answer, once it came (the copy's completion status for `pr`). */
  done: Phase[];
}

export type Boot = (vm: Vm, bootTrace: string) => Promise<Console>;

/** Runs the whole sequence (or up to the kill that cuts it: then it rejects); from the boot on a VM already in `state`. */
export async function runFlow(vmmUrl: () => string, traces: Traces, boot: Boot, state: FlowState): Promise<FlowState> {
  const enter = (p: Phase): void => void (state.phase = p);
  if (!state.vm) {
    enter('build');
    state.vm = await ok<Vm>(http('POST', `${vmmUrl()}/v1/vms`, { token: VMM_ADMIN, body: VM_SPEC, traceparent: traceparent(traces.build) }), 'create vm');
    state.done.push('build');
  }
  enter('boot');
  const c = (state.console = await boot(state.vm, traces.boot));
  state.done.push('boot');
  const setup = newTraceId();
  const { pid } = await c.call<{ pid: number }>(setup, 'POST', '/v1/processes', { name: 'sweeper' });
  const { gva: src } = await c.call<{ gva: number }>(setup, 'POST', `/v1/processes/${pid}/mmap`, { length: COPY });
  const { gva: dst } = await c.call<{ gva: number }>(setup, 'POST', `/v1/processes/${pid}/mmap`, { length: COPY });
  await c.call(setup, 'PUT', `/v1/processes/${pid}/memory`, { gva: src, data: Buffer.alloc(COPY, 0x5a).toString('base64') });
  enter('bind');
  await c.call(traces.bind, 'POST', '/v1/sva/bind', { pid, vrid: c.vrid });
  state.done.push('bind');
  enter('pr');
  const r = await c.call<{ status: number }>(traces.pr, 'POST', `/v1/processes/${pid}/submit`, { vrid: c.vrid, descriptor: { op: 'memmove', src, dst, length: COPY } });
  if (r.status !== 1) throw new Error(`the copy into untouched memory completed with status ${r.status}`);
  state.done.push('pr');
  enter('unbind');
  await c.call(traces.unbind, 'POST', '/v1/sva/unbind', { pid, vrid: c.vrid });
  state.done.push('unbind');
  enter('delete');
  await ok(http('DELETE', `${vmmUrl()}/v1/vms/${state.vm.id}`, { token: VMM_ADMIN, traceparent: traceparent(traces.delete) }), 'delete vm');
  state.done.push('delete');
  return state;
}

/** A guest boots on `vm` and binds a fresh process: the proof that a VM came back usable. */
export async function bindWorks(vmmUrl: string, vm: Vm): Promise<number> {
  const t = newTraces();
  const c = await inProcessConsole(vmmUrl, vm, t.boot);
  try {
    const { pid } = await c.call<{ pid: number }>(t.bind, 'POST', '/v1/processes', { name: 'after' });
    return (await c.call<{ vpasid: number }>(t.bind, 'POST', '/v1/sva/bind', { pid, vrid: c.vrid })).vpasid;
  } finally {
    await c.stop();
  }
}
