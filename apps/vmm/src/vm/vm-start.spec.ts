// POST /v1/vms/:id/start: a VM whose host side died (its host process killed, or the host kernel with it) is
// powered on again by the VMM admin, journaled, and a guest boots on it; anything else is refused unchanged.
import { InProcessStack, STACK_DEVICES } from '../../../../stack/in-process-stack';
import { kernelState } from '../../../host-kernel/src/kernel-state';
import { processOps } from '../../../host-kernel/src/process/process.ops';
import { VmEntity, type VmRow } from '../persistence/vm.entity';

const DSA0 = STACK_DEVICES[0].bdf;

async function stoppedVm(stack: InProcessStack): Promise<{ id: number; token: string }> {
  const vm = await stack.createVm({ name: 'phoenix', devices: [DSA0] });
  await stack.bootGuest(vm);
  const pid = stack.vmm.vms.running(vm.id).handles.pid;
  await stack.host.dispatcher.exec(processOps.exit, { kind: 'admin' }, { pid });
  await stack.settle();
  return vm;
}

const admin = (stack: InProcessStack) => stack.vmm.authorize('admin', stack.vmmAdminToken);
const row = async (stack: InProcessStack, id: number): Promise<VmRow | null> => stack.vmm.journal.store.ds.getRepository<VmRow>(VmEntity).findOneBy({ id });

describe('powering a stopped VM on again', () => {
  it('rebuilds its host side (journaled as vm.start), persists it running, and a guest boots and binds on it', async () => {
    const stack = await InProcessStack.create();
    try {
      const vm = await stoppedVm(stack);
      expect(stack.vmm.vms.get(admin(stack), vm.id)).toMatchObject({ state: 'stopped' });
      expect((await row(stack, vm.id))?.state).toBe('stopped');
      const view = await stack.startVm(vm.id);
      expect(view).toMatchObject({ id: vm.id, state: 'running', stopReason: null });
      expect((await row(stack, vm.id))?.state).toBe('running');
      const started = (await stack.journals()).vmm.filter((r) => r.operation === 'vm.start');
      expect(started).toEqual([expect.objectContaining({ object: `vm:${vm.id}`, errno: null, actor: 'admin' })]);
      // The VM's token works again and a guest boots on the rebuilt machine.
      const guest = await stack.bootGuest(vm);
      const vrid = guest.status().machine?.devices[0].vrid as number;
      const { pid } = await stack.console(vm.id, (g) => g.createProcess('after-start'));
      await expect(stack.console(vm.id, (g) => g.bind(pid, vrid))).resolves.toMatchObject({ vpasid: 1 });
    } finally {
      await stack.close();
    }
  });

  it('is refused for a running VM (EBUSY), without the admin token (EPERM/EACCES), and when the rebuild fails: nothing changes', async () => {
    const stack = await InProcessStack.create();
    try {
      const running = await stack.createVm({ name: 'busy' });
      const before = kernelState(stack.host.kernel);
      await expect(stack.startVm(running.id)).rejects.toMatchObject({ errno: 'EBUSY' });
      await expect(stack.vmm.vms.powerOn(stack.vmm.authorize('caller', running.token, running.id), running.id)).rejects.toMatchObject({ errno: 'EPERM' });
      await expect(stack.vmm.vms.powerOn(stack.vmm.authorize('none', null), running.id)).rejects.toMatchObject({ errno: 'EACCES', status: 401 });
      await expect(stack.startVm(999)).rejects.toMatchObject({ errno: 'ENOENT' });
      expect(kernelState(stack.host.kernel)).toEqual(before);

      const vm = await stoppedVm(stack);
      const stopped = stack.vmm.vms.get(admin(stack), vm.id);
      // Another tenant takes the VM's device: the rebuild fails at VFIO open and unwinds.
      const tenant = await stack.hostProcess('squatter');
      await tenant.k.openDevice(DSA0);
      const held = kernelState(stack.host.kernel);
      await expect(stack.startVm(vm.id)).rejects.toMatchObject({ errno: 'EBUSY' });
      await stack.settle();
      expect(stack.vmm.vms.get(admin(stack), vm.id)).toEqual(stopped);
      const after = kernelState(stack.host.kernel);
      // Only the dead process record of the attempt remains; nothing of it is held.
      expect({ ...after, processes: after.processes.filter((p) => p.state === 'running') }).toEqual({ ...held, processes: held.processes.filter((p) => p.state === 'running') });
      expect((await row(stack, vm.id))?.state).toBe('stopped');
    } finally {
      await stack.close();
    }
  });

  it('a start whose journal row cannot be written is undone: EIO, the VM stays stopped, the host holds nothing of it', async () => {
    const stack = await InProcessStack.create();
    try {
      const vm = await stoppedVm(stack);
      const stopped = stack.vmm.vms.get(admin(stack), vm.id);
      const before = kernelState(stack.host.kernel);
      const store = stack.vmm.journal.store;
      const write = store.write.bind(store);
      store.write = (rows, writes) => {
        if (rows.some((r) => r.operation === 'vm.start' && r.errno === null)) throw new Error('disk I/O error');
        return write(rows, writes);
      };
      await expect(stack.startVm(vm.id)).rejects.toMatchObject({ errno: 'EIO' });
      await stack.settle();
      expect(stack.vmm.vms.get(admin(stack), vm.id)).toEqual(stopped);
      const after = kernelState(stack.host.kernel);
      expect(after.processes.filter((p) => p.state === 'running')).toEqual(before.processes.filter((p) => p.state === 'running'));
      expect([after.pool, after.pins, after.routes, after.vms]).toEqual([before.pool, before.pins, before.routes, before.vms]);
    } finally {
      await stack.close();
    }
  });
});
