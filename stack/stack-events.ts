// External events on the in-process stack (DESIGN §9), as the harness causes them on the three processes, each
// first recorded as an input in the operator's own journal (the cause is the operator's, so the row is too):
// a SIGKILL of the VMM or of a guest, a restart of the VMM (a power cycle of its VMs, over the same database),
// logical time advanced. Before the event the operator hands every app its clock, so everything the event
// causes journals after the event's row. `quiesce` waits until nothing is left to run.
import { Journal } from '@app/shared/journal/journal';
import type { InputRequest } from '@app/shared/replay/input';
import { newTraceId, runInTrace } from '@app/shared/trace';
import type { InProcessStack } from './in-process-stack';

/** The operator's row of an event it causes (or of a background request it sends without waiting for it). */
export function eventRow(input: InputRequest): { operation: string; actor: string; object: string; args: Record<string, unknown> } {
  const target = input.vm !== undefined ? `${input.app}-${input.vm}` : input.app;
  const args =
    input.kind === 'http'
      ? { method: input.method, path: input.path }
      : { ...(input.signal ? { signal: input.signal } : {}), ...(input.ms !== undefined ? { ms: input.ms } : {}) };
  return { operation: `operator.${input.kind}`, actor: 'operator', object: `app:${target}`, args };
}

/** Records an external event in the operator's journal and hands the run's clock to every app. */
export async function recordEvent(stack: InProcessStack, input: InputRequest): Promise<void> {
  await runInTrace({ traceId: newTraceId(), spanId: null, caller: null }, () => stack.operatorJournal.record(eventRow(input), [], input));
  broadcastClock(stack);
}

/** Every app's clock moves to at least the operator's (a request carrying `x-lamport` does this over REST). */
export function broadcastClock(stack: InProcessStack): void {
  const now = stack.operator.clock.peek();
  for (const j of stack.streams().values()) j.clock.observe(now);
}

/** The operator's clock moves past every app's (it read each app's `x-lamport` after the stack went quiet). */
export function syncOperatorClock(stack: InProcessStack): void {
  for (const j of stack.streams().values()) stack.operator.clock.observe(j.clock.peek());
}

/** SIGKILL of the VMM (its VMs' lifelines drop: the host closes their fds; their guests die) or of a guest. */
export async function kill(stack: InProcessStack, app: 'vmm' | 'guest', vm?: number): Promise<void> {
  await recordEvent(stack, { kind: 'kill', app, ...(vm !== undefined ? { vm } : {}), signal: 'SIGKILL' });
  if (app === 'vmm') {
    // What the host and the guests see of a dead VMM: every lifeline it held or served ends.
    stack.down.add('vmm');
    stack.vmm.vms.shutdown();
    return;
  }
  const guest = vm === undefined ? undefined : stack.guests.get(vm);
  if (!guest) throw new Error(`no guest running on vm ${String(vm)}`);
  stack.guests.delete(vm as number);
  guest.shutdown();
}

/** Restarts the VMM over the same database: it loads its VM records and rebuilds the running ones (in the background). */
export async function restartVmm(stack: InProcessStack): Promise<void> {
  await recordEvent(stack, { kind: 'restart', app: 'vmm' });
  stack.vmm.vms.shutdown();
  const journal = new Journal(stack.vmmDb.ds, 'vmm');
  await journal.recover();
  journal.clock.observe(stack.operator.clock.peek());
  stack.vmm = await (stack.constructor as typeof InProcessStack).openVmm(stack.host, journal, stack.vmmAdminToken, stack.opts);
  stack.down.delete('vmm');
  void stack.vmm.vms.restoreAll();
}

/** Advances logical time by `ms` (DESIGN §9: in deterministic mode waits run on the Lamport clocks). */
export async function advance(stack: InProcessStack, ms: number): Promise<void> {
  await recordEvent(stack, { kind: 'advance', app: 'operator', ms });
  stack.operator.clock.observe(stack.operator.clock.peek() + ms);
  broadcastClock(stack);
}

/** True while a device has queued work its running engine will execute. */
function engineBusy(stack: InProcessStack): boolean {
  const devices = stack.host.kernel.accelerators;
  return stack.host.kernel.vfio.all().some((d) => {
    const a = devices.accelerator(d.bdf);
    return !a.paused && a.stats.queued > 0;
  });
}

/**
 * Waits until the stack is quiet: no engine work left to run and no journal moved for two settle rounds
 * (lifeline events, background rebuilds and timers all run on the event loop). Then the operator's clock
 * moves past every app's.
 */
export async function quiesce(stack: InProcessStack, maxRounds = 10_000): Promise<void> {
  let last = '';
  for (let stable = 0, round = 0; stable < 2; round++) {
    if (round >= maxRounds) throw new Error(`the stack did not go quiet in ${maxRounds} rounds`);
    await stack.settle();
    const now = [...stack.streams().values()].map((j) => j.clock.peek()).join(',') + (engineBusy(stack) ? '+busy' : '');
    stable = now === last ? stable + 1 : 0;
    last = now;
  }
  syncOperatorClock(stack);
}
