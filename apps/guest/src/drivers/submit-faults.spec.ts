// A submission whose completion record the device can never write: the process is bound to one device of the VM
// but submits to another, where its vPASID has no translation. The device faults on the record's write, the
// host IOMMU reports it, the VMM forwards it in guest terms on the guest's lifeline, and the driver stops
// waiting: EFAULT, not EIO after its whole poll budget (DESIGN §5: never a 500 for what a caller did).
import { InProcessStack, STACK_DEVICES } from '../../../../stack/in-process-stack';
import { COMPLETION_MAX_POLLS } from './drivers.constants';

const [DSA0, DSA1] = STACK_DEVICES.map((d) => d.bdf);

describe('a submission to a device the process is not bound to', () => {
  it('fails with EFAULT once the vIOMMU reports the completion-record fault, long before the poll budget, and the driver goes on', async () => {
    let polls = 0;
    const stack = await InProcessStack.create({ accel: { yield: () => new Promise((resolve) => setImmediate(() => resolve(void polls++))) } });
    try {
      const vm = await stack.createVm({ name: 'two-devices', devices: [DSA0, DSA1] });
      const guest = await stack.bootGuest(vm);
      const [a, b] = (guest.status().machine?.devices ?? []).map((d) => d.vrid);
      const { pid } = await stack.console(vm.id, (g) => g.createProcess('stray'));
      const { vpasid } = await stack.console(vm.id, (g) => g.bind(pid, b));
      polls = 0;
      const stray = stack.console(vm.id, (g) => g.submit(pid, { vrid: a, descriptor: { op: 'noop' } }));
      await expect(stray).rejects.toMatchObject({ errno: 'EFAULT', status: 400 });
      expect(polls).toBeLessThan(COMPLETION_MAX_POLLS);
      // The guest journaled the fault it was told about, in guest terms.
      const { guests } = await stack.journals();
      const rows = guests.get(vm.id) ?? [];
      expect(rows.filter((r) => r.operation === 'viommu.fault').map((r) => r.args)).toContainEqual(expect.objectContaining({ vrid: a, vpasid, access: 'write' }));
      expect(rows.filter((r) => r.operation === 'accel.submit').map((r) => r.errno)).toEqual(['EFAULT']);
      // Bound where it submits, the same process is served.
      await expect(stack.console(vm.id, (g) => g.submit(pid, { vrid: b, descriptor: { op: 'noop' } }))).resolves.toEqual({ result: 'accepted', status: 1, bytes: 0 });
    } finally {
      await stack.close();
    }
  });
});
