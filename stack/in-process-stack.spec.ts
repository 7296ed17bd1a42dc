import { InProcessStack } from './in-process-stack';

const DSA0 = '0000:6a:01.0';

describe('the in-process stack', () => {
  it('runs the guest SVA flow from the real code: bind, ENQCMD memmove with the right bytes, unbind, in the design order', async () => {
    const stack = await InProcessStack.create();
    try {
      const vm = await stack.createVm({ name: 'demo', devices: [DSA0] });
      const guest = await stack.bootGuest(vm);
      const vrid = guest.status().machine?.devices[0].vrid as number;
      const { pid } = await stack.console(vm.id, (g) => g.createProcess('demo'));
      const { gva: src } = await stack.console(vm.id, (g) => g.mmap(pid, 8192));
      const { gva: dst } = await stack.console(vm.id, (g) => g.mmap(pid, 8192));
      const bytes = Buffer.from(Array.from({ length: 8192 }, (_, i) => (i * 7 + 3) & 0xff));
      await stack.console(vm.id, (g) => g.writeMemory(pid, src, bytes));
      const { vpasid } = await stack.console(vm.id, (g) => g.bind(pid, vrid));
      const done = await stack.console(vm.id, (g) => g.submit(pid, { vrid, descriptor: { op: 'memmove', src, dst, length: 8192 } }));
      expect(done).toEqual({ result: 'accepted', status: 1, bytes: 8192 });
      expect(await stack.console(vm.id, (g) => g.readMemory(pid, dst, 8192))).toEqual(bytes);
      await stack.console(vm.id, (g) => g.unbind(pid, vrid));
      const { host } = await stack.journals();
      const order = host.filter((r) => r.errno === null && ['ioasid.alloc', 'ioasid.bind_pgtbl', 'vfio.allow_ioasid', 'kvm.map_pasid', 'kvm.unmap_pasid', 'vfio.disallow_ioasid', 'ioasid.destroy'].includes(r.operation));
      // The VM build's own GPA ioasid comes first (alloc, bind, allow on the RID); then the bind and the unbind.
      expect(order.slice(3).map((r) => r.operation)).toEqual(['ioasid.alloc', 'ioasid.bind_pgtbl', 'vfio.allow_ioasid', 'kvm.map_pasid', 'kvm.unmap_pasid', 'vfio.disallow_ioasid', 'ioasid.destroy']);
      expect(order.find((r) => r.operation === 'kvm.map_pasid')?.args).toMatchObject({ vpasid });
      const ppasid = (order[3].result as { ioasid: number }).ioasid;
      expect(host.some((r) => r.operation === 'event.ioasid-freed' && r.object === `ioasid:${ppasid}`)).toBe(true);
    } finally {
      await stack.close();
    }
  });
});
