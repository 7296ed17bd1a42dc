// The crash sweep (issue 11, test/harness/sweep/): a VM is built, a guest boots and binds, a copy into untouched
// memory makes page requests, the guest unbinds and the VM is deleted. The steps are the port calls a clean run
// makes (DEBUG_CALL_TRACE: the VMM's to the host, the guest's to the VMM), and the sequence is cut by a SIGKILL
// just before each: of the VMM (then the host must hold nothing of it, and a restarted VMM must bring the VM back
// for a bind), or of the guest (then the host must hold only the VM, and a new guest must bind). Last, the host
// kernel is killed in a burst. `npm test` cuts before the first call of each method of each phase that is not a
// RAM access (steps.ts `bounded`); `npm run sweep` (SWEEP=full) cuts before every call, also before every host
// call the VMM makes for a guest that is then killed, with a 3,000-call burst, and prints each step as it goes.
import { join } from 'node:path';
import { useStack } from './harness/hooks';
import { type Phase, PHASES } from './harness/sweep/flow';
import { bounded, label, type Step } from './harness/sweep/steps';
import { hostBurst } from './harness/sweep/host-burst';
import { learnSteps, newFigures, sweepGuest, sweepVmm } from './harness/sweep/sweep';

const FULL = process.env.SWEEP === 'full';
/** SWEEP_STEPS=<regex>: only the steps whose label matches (e.g. "bind #\\d+ mapPasid"), to look at one cut. */
const ONLY = process.env.SWEEP_STEPS ? new RegExp(process.env.SWEEP_STEPS) : null;
const chosen = (steps: Step[]): Step[] => (FULL ? steps : bounded(steps)).filter((s) => !ONLY || ONLY.test(label(s)));
/** The swept sequences of issue 11 (the guest's boot is cut in the guest sweep). */
const VMM_PHASES: readonly Phase[] = ['build', 'bind', 'pr', 'unbind', 'delete'];
const STEP_MS = 8_000;
const GUEST_PHASES: readonly Phase[] = ['boot', 'bind', 'pr', 'unbind'];

const stack = useStack(async (s) => {
  await s.startHost();
});
const learnt: { steps: Step[] } = { steps: [] };
const figures = newFigures(FULL || process.env.SWEEP_LOG ? (line) => void process.stderr.write(`${line}\n`) : undefined);

describe('the crash sweep', () => {
  it('learns the steps from a clean run: the VMM calls the host in every phase, the guest calls the VMM in every phase it drives', async () => {
    const { steps } = await learnSteps(stack());
    learnt.steps = steps;
    const phasesOf = (port: Step['port']): Phase[] => PHASES.filter((p) => steps.some((s) => s.port === port && s.phase === p));
    expect(phasesOf('host')).toEqual(expect.arrayContaining(['build', 'bind', 'pr', 'unbind', 'delete']));
    expect(phasesOf('vmm')).toEqual(expect.arrayContaining(GUEST_PHASES));
    // The map of a bind: the host PASID is allowed on the device before the guest's vPASID is mapped to it.
    const bind = steps.filter((s) => s.port === 'host' && s.phase === 'bind').map((s) => s.method);
    expect(bind.indexOf('allowIoasid')).toBeGreaterThanOrEqual(0);
    expect(bind.indexOf('allowIoasid')).toBeLessThan(bind.indexOf('mapPasid'));
  });

  it('a VMM SIGKILL before each of its host calls: the host holds nothing of it, a restarted VMM brings the VM back and a bind works', async () => {
    const vmmSteps = chosen(learnt.steps.filter((s) => s.port === 'host' && (FULL || VMM_PHASES.includes(s.phase))));
    expect(vmmSteps.length).toBeGreaterThan(0);
    const before = { kills: figures.kills, steps: figures.steps };
    await sweepVmm(stack(), vmmSteps, figures);
    expect(figures.leaks).toEqual([]);
    // The first call of a method in a phase is made by every run; only the full sweep's later calls may not be.
    expect(FULL ? [] : figures.absent).toEqual([]);
    expect(figures.kills - before.kills).toBe(vmmSteps.length);
    expect(figures.steps - before.steps).toBe(vmmSteps.length);
  }, 60_000 + 53 * STEP_MS);

  it('a guest SIGKILL before each of its VMM calls (and, in the full sweep, before each host call the VMM makes for it): the host holds only the VM, and a new guest binds', async () => {
    const guestSteps = chosen(learnt.steps.filter((s) => GUEST_PHASES.includes(s.phase) && (s.port === 'vmm' || FULL)));
    expect(guestSteps.length).toBeGreaterThan(0);
    const before = figures.kills;
    await sweepGuest(stack(), guestSteps, figures);
    expect(figures.leaks).toEqual([]);
    expect(FULL ? [] : figures.absent).toEqual([]);
    expect(figures.kills - before).toBe(guestSteps.length);
  }, 60_000 + 80 * STEP_MS);

  it('the host kernel SIGKILLed in a burst: every call it answered is in its journal after the restart, and the VMM brings its VMs back by itself', async () => {
    const s = stack();
    await s.startVmm({ DATA_DIR: join(s.dataDir, 'vmm-burst') });
    const b = await hostBurst(s, { workers: 8, killAfter: FULL ? 3000 : 600 });
    process.stdout.write(`host SIGKILL in a burst: ${b.calls} calls sent, ${b.acknowledged} answered, ${b.missing.length} missing from the journal; VMs running again ${b.vmsBackMs} ms after the host's restart\n`);
    expect(b.acknowledged).toBeGreaterThanOrEqual(FULL ? 3000 : 600);
    expect(b.missing).toEqual([]);
    expect(b.vpasid).toBeGreaterThan(0);
  }, 120_000);

  afterAll(() => {
    const ms = figures.recoverMs;
    const line = `crash sweep: ${learnt.steps.length} steps learnt (${learnt.steps.map(label).join(', ')}); ${figures.steps} swept, ${figures.kills} kills, ${figures.absent.length} not made again (${figures.absent.join(', ')}), ${figures.leaks.length} leaks; recovery (VMM restart to its VM running again) ${ms.length ? `${Math.min(...ms)}-${Math.max(...ms)} ms, median ${[...ms].sort((a, b) => a - b)[ms.length >> 1]} ms` : 'n/a'}`;
    process.stdout.write(`${line}\n${figures.leaks.map((l) => `  LEAK ${l}\n`).join('')}`);
  });
});
