// A host kernel that goes away takes every VM's host process with it; the VMM reconnects and powers the VMs on
// again by itself (journaled vm.start, actor vmm), the way it restores them after its own restart. A VM the host
// ended on purpose (the admin killed its process) is not brought back behind the operator's back.
import { HOST_SHUTDOWN_REASON } from '@app/shared/contract/host-kernel';
import { KernelError } from '@app/shared/errno';
import { HandTimers } from '@app/shared/hand-timers.testing';
import type { JournalEvent } from '@app/shared/journal/journal';
import { InProcessStack, STACK_DEVICES } from '../../../../stack/in-process-stack';
import { restartVmm } from '../../../../stack/stack-events';
import { processOps } from '../../../host-kernel/src/process/process.ops';
import type { HostKernelPort } from '../host-kernel.port';
import { HostReconnect, hostUnreachable, hostWentAway, RECONNECT_FIRST_MS, RECONNECT_MAX_MS } from './host-reconnect';

const DSA0 = STACK_DEVICES[0].bdf;
const DSA1 = STACK_DEVICES[1].bdf;
const admin = (stack: InProcessStack) => stack.vmm.authorize('admin', stack.vmmAdminToken);
const starts = async (stack: InProcessStack): Promise<JournalEvent[]> => (await stack.journals()).vmm.filter((r) => r.operation === 'vm.start');

/** Polls (in real time: the VMM's reconnect waits on real timers here) until `check` holds. */
async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`${what}: not reached`);
}

async function bindWorks(stack: InProcessStack, vm: { id: number; token: string }): Promise<number> {
  const guest = await stack.bootGuest(vm);
  const vrid = guest.status().machine?.devices[0].vrid as number;
  const { pid } = await stack.console(vm.id, (g) => g.createProcess('after'));
  return (await stack.console(vm.id, (g) => g.bind(pid, vrid))).vpasid;
}

describe('the VMM reconnects to a host kernel that went away', () => {
  it('which exits are the host going away: none at all (a crash) or its own shutdown', () => {
    expect([null, HOST_SHUTDOWN_REASON, 'killed by admin', 'lifeline dropped', 'exit'].map(hostWentAway)).toEqual([true, true, false, false, false]);
    expect([new KernelError('EIO', 'fetch failed', 502), new KernelError('EIO', 'journal'), new KernelError('ENOENT', 'x', 502), new Error('x')].map(hostUnreachable)).toEqual([true, false, false, false]);
  });

  it('pings with a doubling, capped back-off until the host answers; one wait serves every caller; stop ends it', async () => {
    const timers = new HandTimers();
    let up = false;
    let pings = 0;
    const reconnect = new HostReconnect(async () => {
      pings++;
      if (!up) throw new KernelError('EIO', 'connection refused', 502);
    }, timers);
    const a = reconnect.untilBack();
    const b = reconnect.untilBack();
    const delays: number[] = [];
    for (let i = 0; i < 7; i++) {
      await until(() => timers.pending.length === 1, 'a wait armed');
      delays.push(...timers.pending);
      timers.fire();
    }
    const expected = [];
    for (let d = RECONNECT_FIRST_MS; expected.length < 7; d = Math.min(2 * d, RECONNECT_MAX_MS)) expected.push(d);
    expect(delays).toEqual(expected);
    expect(delays.at(-1)).toBe(RECONNECT_MAX_MS);
    up = true;
    await expect(Promise.all([a, b])).resolves.toEqual([true, true]);
    expect(pings).toBe(8);
    // Stopped while the host is away: the wait ends, saying the host is not back.
    up = false;
    const c = reconnect.untilBack();
    await until(() => timers.pending.length === 1, 'a wait armed');
    reconnect.stop();
    timers.fire();
    await expect(c).resolves.toBe(false);
  });

  it('a host-kernel shutdown stops every VM; each is powered on again by the VMM itself, and a guest binds on it', async () => {
    const stack = await InProcessStack.create();
    try {
      const one = await stack.createVm({ name: 'one', devices: [DSA0] });
      const two = await stack.createVm({ name: 'two', devices: [DSA1] });
      const pids = [one, two].map((vm) => stack.vmm.vms.running(vm.id).handles.pid);
      await stack.bootGuest(one);
      await stack.host.shutdown();
      await until(async () => (await starts(stack)).length === 2, 'both VMs started again');
      const vmm = (await stack.journals()).vmm;
      for (const vm of [one, two]) {
        const stopped = vmm.findIndex((r) => r.operation === 'vm.stopped' && r.object === `vm:${vm.id}`);
        const started = vmm.findIndex((r) => r.operation === 'vm.start' && r.object === `vm:${vm.id}`);
        expect(stopped).toBeGreaterThanOrEqual(0);
        expect(started).toBeGreaterThan(stopped);
        expect(vmm[started]).toMatchObject({ actor: 'vmm', errno: null, args: { reason: 'the host kernel is back' } });
        expect(stack.vmm.vms.get(admin(stack), vm.id)).toMatchObject({ state: 'running', stopReason: null });
        // A new host process: the old one died with the host.
        expect(pids).not.toContain(stack.vmm.vms.running(vm.id).handles.pid);
      }
      // The guest died with its machine; a new one boots on the machine that came back, and binds.
      await until(() => !stack.guests.has(one.id), 'the guest gone with its machine');
      await expect(bindWorks(stack, one)).resolves.toBe(1);
    } finally {
      await stack.close();
    }
  });

  it('a VM whose process the admin killed stays stopped: nothing starts it but the operator', async () => {
    const stack = await InProcessStack.create();
    try {
      const vm = await stack.createVm({ name: 'killed', devices: [DSA0] });
      await stack.host.dispatcher.exec(processOps.exit, { kind: 'admin' }, { pid: stack.vmm.vms.running(vm.id).handles.pid });
      await until(() => stack.vmm.vms.get(admin(stack), vm.id).state === 'stopped', 'stopped');
      // Long enough for a reconnect to have happened, were one started (the host answers at once here).
      await new Promise((r) => setTimeout(r, 3 * RECONNECT_FIRST_MS));
      expect(await starts(stack)).toEqual([]);
      expect(stack.vmm.vms.get(admin(stack), vm.id)).toMatchObject({ state: 'stopped', stopReason: 'powered off: its host side ended' });
    } finally {
      await stack.close();
    }
  });

  it('a VMM restarting while the host is absent restores nothing, then brings the VM back once the host answers', async () => {
    let hostDown = false;
    // The VMM's door to the host, as a network to a dead host would answer it.
    const reachable = (port: HostKernelPort): HostKernelPort =>
      new Proxy(port, {
        get(t, prop, receiver) {
          const v = Reflect.get(t, prop, receiver) as unknown;
          if (typeof v !== 'function') return v;
          if (prop === 'as') return (token: string) => reachable(t.as(token));
          return (...args: unknown[]) => (hostDown ? Promise.reject(new KernelError('EIO', 'connect ECONNREFUSED', 502)) : (v as (...a: unknown[]) => unknown).apply(t, args));
        },
      });
    const stack = await InProcessStack.create({ wrapHost: reachable });
    try {
      const vm = await stack.createVm({ name: 'patient', devices: [DSA0] });
      hostDown = true;
      await restartVmm(stack);
      await until(() => stack.vmm.vms.get(admin(stack), vm.id).state === 'stopped', 'restore failed');
      const restore = (await stack.journals()).vmm.filter((r) => r.operation === 'vm.restore');
      expect(restore).toEqual([expect.objectContaining({ errno: 'EIO' })]);
      expect(await starts(stack)).toEqual([]);
      hostDown = false;
      await until(async () => (await starts(stack)).length === 1, 'started once the host answers');
      expect((await starts(stack))[0]).toMatchObject({ actor: 'vmm', errno: null, object: `vm:${vm.id}` });
      await expect(bindWorks(stack, vm)).resolves.toBe(1);
    } finally {
      await stack.close();
    }
  });
});
