// The crash sweep (issue 11): the steps of the swept sequence are learnt from one clean run (steps.ts), then each
// step is cut by a SIGKILL just before it, of the VMM or of the guest, on one host kernel that lives through the
// whole sweep. After each kill the host must hold nothing of the dead tenant (host-view.ts), a restarted VMM must
// bring back the VM it had acknowledged, a guest must bind on it, and once its VMs are deleted the host must hold
// exactly what it held before the step was cut. Figures are counted as it goes, for the campaign's report.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { AppProcess, ENTRY } from '../apps';
import { AUDIT, http, type Stack, VMM_ADMIN } from '../stack';
import { bindWorks, type Boot, type FlowState, inProcessConsole, newTraces, type Phase, runFlow, spawnedConsole, traceparent, type Traces, untilDetached, type Vm, VM_SPEC } from './flow';
import { snapshot, untilHolds } from './host-view';
import { callsOf, label, stallPoint, type Step, stepsOf } from './steps';

export interface Figures {
  /** Each step once swept, with how long it took (the full sweep prints them as it goes). */
  log?: (line: string) => void;
  steps: number;
  /** Steps of the clean run that a later run did not make (the page-request phase reads guest RAM a varying number of times). */
  absent: string[];
  kills: number;
  leaks: string[];
  recoverMs: number[];
}

export const newFigures = (log?: (line: string) => void): Figures => ({ log, steps: 0, absent: [], kills: 0, leaks: [], recoverMs: [] });

/** A guest app started without waiting for READY (a guest stalled in its boot never prints it). */
function spawnGuest(s: Stack, vm: Vm, env: Record<string, string>): AppProcess {
  const child = spawn(process.execPath, [ENTRY.guest], {
    env: {
      PATH: process.env.PATH ?? '',
      PORT: '0',
      DATA_DIR: join(s.dataDir, `guest-${vm.id}-${Date.now()}`),
      VMM_URL: s.vmmApp.url,
      VM_ID: String(vm.id),
      VM_TOKEN: vm.token,
      AUDIT_TOKEN: AUDIT,
      ...env,
    },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new AppProcess('guest', child);
}

async function until<T>(what: string | (() => string), check: () => T | undefined | Promise<T | undefined>, deadlineMs = 15_000): Promise<T> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`${typeof what === 'string' ? what : what()}: not within ${deadlineMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const stalledIn = (app: AppProcess): boolean => app.stdout.some((l) => l.startsWith('STALLED '));

/** The clean run: both apps print their port calls; returns the steps of every phase. */
export async function learnSteps(s: Stack): Promise<{ steps: Step[]; elsewhere: number }> {
  await s.startVmm({ DEBUG_CALL_TRACE: '1', DATA_DIR: join(s.dataDir, 'vmm-learn') });
  const traces = newTraces();
  let guest: AppProcess | undefined;
  const boot: Boot = async (vm, bootTrace) => {
    guest = await s.startGuest(vm, { DEBUG_CALL_TRACE: '1', TRACEPARENT: traceparent(bootTrace) });
    return spawnedConsole(guest);
  };
  await runFlow(() => s.vmmApp.url, traces, boot, { done: [] });
  const calls = [...callsOf(s.vmmApp), ...(guest ? callsOf(guest) : [])];
  await guest?.stop('SIGKILL');
  await s.vmmApp.stop('SIGKILL');
  const { steps, elsewhere } = stepsOf(calls, traces);
  return { steps, elsewhere: elsewhere.length };
}

/** The phases a run only reaches once its guest has bound: such a run proves that a bind works. */
const AFTER_BIND: readonly Phase[] = ['pr', 'unbind', 'delete'];

/**
 * A recovery not yet proven by a bind: the next run proves it when it binds before its cut; otherwise (its cut
 * comes first, or there is no next run) a guest binds on the VM right away.
 */
class Owed {
  private what: string | null = null;

  owe(what: string): void {
    this.what = what;
  }

  /** Before a run: pays now unless that run will bind. */
  async before(next: Step | undefined, vmmUrl: string, vm: Vm | undefined, figures: Figures): Promise<void> {
    if (!this.what || (next && AFTER_BIND.includes(next.phase))) return;
    const what = this.what;
    this.what = null;
    if (!vm) return;
    const vpasid = await bindWorks(vmmUrl, vm).catch((err: Error) => err);
    if (!(typeof vpasid === 'number' && vpasid > 0)) figures.leaks.push(`${what}: a guest cannot bind on the VM: ${String(vpasid)}`);
  }

  /** After a run: its bind paid. */
  after(state: FlowState, figures: Figures): void {
    if (!this.what) return;
    if (!state.done.includes('bind')) figures.leaks.push(`${this.what}: the next run did not get through its bind`);
    this.what = null;
  }
}

async function leakCheck(figures: Figures, where: string, check: () => Promise<unknown>): Promise<void> {
  try {
    await check();
  } catch (err) {
    figures.leaks.push(`${where}: ${(err as Error).message}`);
  }
}

async function deleteVm(s: Stack, vm: Vm, figures: Figures, where: string): Promise<void> {
  const del = await http('DELETE', `${s.vmmApp.url}/v1/vms/${vm.id}`, { token: VMM_ADMIN });
  if (del.status >= 300) figures.leaks.push(`${where}: DELETE /v1/vms/${vm.id}: ${del.status} ${del.text}`);
}

/**
 * Cuts the sequence by a VMM SIGKILL before each of `steps` (the VMM's host calls, in call order). One VMM process
 * per step: the one restarted after a kill already carries the next step's stall point (the traces are chosen up
 * front). A VM the VMM had acknowledged must come back running; the next run goes on with it (a VM is built again
 * only for a cut in the build), and its bind is the proof that the VM is usable.
 */
export async function sweepVmm(s: Stack, steps: Step[], figures: Figures): Promise<void> {
  const vmmDir = join(s.dataDir, 'vmm-sweep');
  const plan = steps.map((step) => ({ step, traces: newTraces() }));
  const start = (i: number): Promise<AppProcess> => s.startVmm({ DATA_DIR: vmmDir, ...(i < plan.length ? { DEBUG_STALL_BEFORE: stallPoint(plan[i].step, plan[i].traces) } : {}) });
  await start(0);
  // Whatever happens, no VMM of the sweep outlives it (a stalled one would hold the VM's device for the next test).
  try {
    await sweepVmmSteps(s, plan, start, figures);
  } finally {
    await s.vmmApp.stop('SIGKILL');
  }
}

async function sweepVmmSteps(s: Stack, plan: Array<{ step: Step; traces: Traces }>, start: (i: number) => Promise<AppProcess>, figures: Figures): Promise<void> {
  const empty = await snapshot(s.host.url);
  const owed = new Owed();
  let vm: Vm | undefined;
  for (let i = 0; i < plan.length; i++) {
    const { step, traces } = plan[i];
    const where = `VMM killed before ${label(step)}`;
    const t0 = Date.now();
    await owed.before(step, s.vmmApp.url, vm, figures);
    if (vm && step.phase === 'build') {
      await deleteVm(s, vm, figures, where);
      vm = undefined;
    }
    const state: FlowState = { done: [], vm };
    let finished = false;
    let failed: Error | null = null;
    const run = runFlow(() => s.vmmApp.url, traces, (v, t) => inProcessConsole(s.vmmApp.url, v, t), state).then(
      () => void (finished = true),
      (err: Error) => void (failed = err),
    );
    // A flow that failed before the cut never reaches it: say how it failed, not only that the stall did not come.
    await until(
      () => `${where}: the VMM stalls there${failed ? ` (the run failed first, after ${state.done.join(', ') || 'nothing'}: ${failed.message})` : ''}`,
      () => (stalledIn(s.vmmApp) || finished ? true : undefined),
    );
    if (finished) figures.absent.push(label(step));
    owed.after(state, figures);
    await s.vmmApp.stop('SIGKILL');
    figures.kills++;
    await run;
    await state.console?.stop();
    await leakCheck(figures, where, () => untilHolds(s.host.url, empty));
    const restarted = Date.now();
    await start(i + 1);
    // The VM exists for the VMM once its creation was answered; a delete cut before it was answered may be undone.
    const acknowledged = state.vm && (state.done.includes('build') || vm) && !state.done.includes('delete') ? state.vm : undefined;
    vm = undefined;
    if (acknowledged) {
      const back = await until(`${where}: VM ${acknowledged.id} back`, async () => {
        const r = await http('GET', `${s.vmmApp.url}/v1/vms/${acknowledged.id}`, { token: VMM_ADMIN });
        if (r.status === 404) return 'gone' as const;
        return (r.body as { state: string }).state === 'running' ? ('running' as const) : undefined;
      });
      if (back === 'gone' && step.phase !== 'delete') figures.leaks.push(`${where}: the restarted VMM lost VM ${acknowledged.id}, whose creation it had answered`);
      if (back === 'running') {
        figures.recoverMs.push(Date.now() - restarted);
        vm = acknowledged;
        owed.owe(where);
      }
    }
    figures.steps++;
    figures.log?.(`${where}: ${Date.now() - t0} ms`);
  }
  await owed.before(undefined, s.vmmApp.url, vm, figures);
  if (vm) await deleteVm(s, vm, figures, 'the VMM sweep\'s last VM');
  await leakCheck(figures, 'after the VMM sweep, its last VM deleted', () => untilHolds(s.host.url, empty));
}

/**
 * Cuts the guest-driven phases by a guest SIGKILL before each of `steps`: a guest's own VMM call (its stall knob),
 * or a host call the VMM makes for it (the VMM's knob, every point given to one VMM up front; the VMM's stalled call
 * is let go once the guest is dead). Every guest boots on one VM: after each kill the host must hold what it held
 * before the first guest booted, and the next guest's bind proves the VM usable.
 */
export async function sweepGuest(s: Stack, steps: Step[], figures: Figures): Promise<void> {
  const plan = steps.map((step) => ({ step, traces: newTraces() }));
  const vmmPoints = plan.filter((p) => p.step.port === 'host').map((p) => stallPoint(p.step, p.traces));
  await s.startVmm({ DATA_DIR: join(s.dataDir, 'vmm-guest-sweep'), ...(vmmPoints.length ? { DEBUG_STALL_BEFORE: vmmPoints.join(',') } : {}) });
  try {
    await sweepGuestSteps(s, plan, figures);
  } finally {
    await s.vmmApp.stop('SIGKILL');
  }
}

async function sweepGuestSteps(s: Stack, plan: Array<{ step: Step; traces: Traces }>, figures: Figures): Promise<void> {
  const empty = await snapshot(s.host.url);
  const build = (): Promise<Vm> => s.createVm(VM_SPEC);
  let vm = await build();
  let machine = await snapshot(s.host.url, { machine: true });
  const owed = new Owed();
  for (const { step, traces } of plan) {
    const where = `guest killed before ${label(step)}`;
    const t0 = Date.now();
    await owed.before(step, s.vmmApp.url, vm, figures);
    const vmmStalls = (): number => s.vmmApp.stdout.filter((l) => l.startsWith('STALLED ')).length;
    const stalledBefore = vmmStalls();
    let guest: AppProcess | undefined;
    const state: FlowState = { done: [], vm };
    const boot: Boot = async (v, bootTrace) => {
      const g = (guest = spawnGuest(s, v, { TRACEPARENT: traceparent(bootTrace), ...(step.port === 'vmm' ? { DEBUG_STALL_BEFORE: stallPoint(step, traces) } : {}) }));
      const ready = (): boolean => g.stdout.some((l) => l.startsWith('READY '));
      // A guest cut in its boot never prints READY: the boot is then the phase that hangs.
      await until(`${where}: guest READY`, () => (ready() || stalledIn(g) || vmmStalls() > stalledBefore ? true : undefined));
      if (!ready()) throw new Error('the guest hangs in its boot');
      g.port = (JSON.parse((g.stdout.find((l) => l.startsWith('READY ')) as string).slice(6)) as { port: number }).port;
      return spawnedConsole(g);
    };
    let finished = false;
    const run = runFlow(() => s.vmmApp.url, traces, boot, state).then(() => void (finished = true), () => undefined);
    await until(() => `${where}: the call stalls (guest stderr: ${guest?.stderr.slice(-3).join(' | ')})`, () => {
      if (finished) return true;
      if (step.port === 'vmm') return guest && stalledIn(guest) ? true : undefined;
      return vmmStalls() > stalledBefore ? true : undefined;
    });
    owed.after(state, figures);
    await guest?.stop('SIGKILL');
    figures.kills++;
    if (step.port === 'host') s.vmmApp.signal('SIGUSR2');
    await run;
    // The next guest boots once the VMM has seen this one's lifeline close (before that it is refused, EBUSY).
    await untilDetached(s.vmmApp.url, vm.id);
    if (finished) {
      // The step did not come: the run went on to the VM's delete. The next cut needs a VM again.
      figures.absent.push(label(step));
      await leakCheck(figures, where, () => untilHolds(s.host.url, empty));
      vm = await build();
      machine = await snapshot(s.host.url, { machine: true });
      figures.steps++;
      continue;
    }
    await leakCheck(figures, where, () => untilHolds(s.host.url, machine, { machine: true }));
    owed.owe(where);
    figures.steps++;
    figures.log?.(`${where}: ${Date.now() - t0} ms`);
  }
  await owed.before(undefined, s.vmmApp.url, vm, figures);
  await deleteVm(s, vm, figures, 'the guest sweep\'s VM');
  await leakCheck(figures, 'after the guest sweep, its VM deleted', () => untilHolds(s.host.url, empty));
}
