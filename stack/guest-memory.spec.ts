// Guest RAM without exits (docs/guest-memory.md) on the whole in-process stack: the guest and the VMM reach RAM by
// their mappings of the VM's memory file, so a bind or an unbind crosses to the VMM once (its invalidation batch)
// and to the host only for the exits (ALLOC, BIND_PGTBL, ALLOW, MAP_PASID; UNMAP_PASID, DISALLOW, DESTROY); DMA
// still walks the guest's page tables in that RAM (nested) and moves the bytes the guest wrote.
import { KernelError } from '@app/shared/errno';
import { memFileHandle, openMemFile, openMemHandle } from '@app/shared/memory/mem-file';
import { hwOps } from '../apps/host-kernel/src/hw/hw.ops';
import type { HostKernelPort } from '../apps/vmm/src/host-kernel.port';
import { holdWhen, type HoldWhen } from './fixtures/hold-when';
import { allRows, InProcessStack } from './in-process-stack';

const DSA0 = '0000:6a:01.0';
const stacks: InProcessStack[] = [];
afterEach(async () => {
  for (const s of stacks.splice(0)) await s.close();
});

async function booted(): Promise<{ stack: InProcessStack; door: HoldWhen<HostKernelPort>; vmId: number; token: string; vrid: number; pid: number }> {
  let door: HoldWhen<HostKernelPort> | null = null;
  const stack = await InProcessStack.create({ wrapHost: (port) => (door = holdWhen(port)).port });
  stacks.push(stack);
  const vm = await stack.createVm({ name: 'ram', devices: [DSA0] });
  const guest = await stack.bootGuest(vm);
  const { pid } = await stack.console(vm.id, (g) => g.createProcess('app'));
  return { stack, door: door as unknown as HoldWhen<HostKernelPort>, vmId: vm.id, token: vm.token, vrid: guest.status().machine?.devices[0].vrid as number, pid };
}

describe('guest RAM is shared by mapping, not by calls', () => {
  it('a bind and an unbind: one VMM call each, and only the exits reach the host', async () => {
    const { stack, door, vmId, vrid, pid } = await booted();
    const vmmRows = (await allRows(stack.vmm.journal)).length;
    const mark = door.passed.length;
    await stack.console(vmId, (g) => g.bind(pid, vrid));
    expect(door.passed.slice(mark)).toEqual(['alloc', 'bindPgtbl', 'allowIoasid', 'mapPasid']);
    const afterBind = door.passed.length;
    await stack.console(vmId, (g) => g.unbind(pid, vrid));
    expect(door.passed.slice(afterBind)).toEqual(['unmapPasid', 'disallowIoasid', 'destroy']);
    // The guest's PASID entry and table writes went into RAM: the VMM journaled its two invalidation batches only.
    expect((await allRows(stack.vmm.journal)).slice(vmmRows).map((r) => r.operation)).toEqual(['viommu.invalidate', 'viommu.invalidate']);
  });

  it('DMA through the nested walk reads what the guest wrote in its RAM and writes what the guest reads', async () => {
    const { stack, vmId, vrid, pid } = await booted();
    const { gva } = await stack.console(vmId, (g) => g.mmap(pid, 8192));
    // Both pages touched (mapped in the guest's page table): a device reaches an untouched one only by a page request.
    await stack.console(vmId, (g) => g.writeMemory(pid, gva, Buffer.alloc(8192)));
    await stack.console(vmId, (g) => g.writeMemory(pid, gva + 100, Buffer.from('bytes the guest stored')));
    await stack.console(vmId, (g) => g.bind(pid, vrid));
    const [binding] = stack.vmm.vms.running(vmId).viommu.bindings();
    const dma = (a: { address: number; length: number; write: boolean; data?: Buffer }) =>
      stack.host.dispatcher.exec(hwOps.dma, { kind: 'admin' }, { bdf: DSA0, pasid: binding.ioasid, ...a });
    // GVA → the guest's page table (in RAM, written by the guest without a call) → GPA → the GPA ioasid → host frame.
    expect(await dma({ address: gva + 100, length: 22, write: false })).toEqual({ ok: true, data: Buffer.from('bytes the guest stored') });
    expect(await dma({ address: gva + 4096, length: 11, write: true, data: Buffer.from('device said') })).toMatchObject({ ok: true });
    expect((await stack.console(vmId, (g) => g.readMemory(pid, gva + 4096, 11))).toString()).toBe('device said');
  });

  it('the RAM file goes with the VM: deleting it unlinks the file and frees its frames', async () => {
    const { stack, vmId } = await booted();
    const vm = stack.vmm.vms.running(vmId);
    const file = vm.ramFile;
    const frames = stack.host.kernel.memory.allocatedFrames;
    expect(openMemFile(file).bytes.length).toBe(vm.ramBytes);
    await stack.deleteVm(vmId);
    expect(() => openMemFile(file)).toThrow(KernelError);
    expect(stack.host.kernel.memory.allocatedFrames).toBe(frames - vm.ramBytes / 4096);
  });

  it('the file is handed to the VM’s own token only: another VM’s token and the admin’s are refused', async () => {
    const { stack, vmId, token } = await booted();
    const other = await stack.createVm({ name: 'other' });
    const ram = (token: string) => stack.call({ app: 'vmm', method: 'GET', path: `/v1/vms/${vmId}/ram`, token });
    await expect(ram(other.token)).rejects.toMatchObject({ errno: 'EPERM' });
    // A guest-facing route: the admin token is no VM's (the bearer rule answers 401 EACCES, as over REST).
    await expect(ram(stack.vmmAdminToken)).rejects.toMatchObject({ errno: 'EACCES' });
    const own = stack.vmm.vms.running(vmId);
    const mine = await stack.call<{ handle: string; size: number }>({ app: 'vmm', method: 'GET', path: `/v1/vms/${vmId}/ram`, token });
    expect(mine).toEqual({ handle: memFileHandle(own.ramFile), size: own.ramBytes });
    // The handle maps the very bytes the VMM maps.
    expect(openMemHandle(mine.handle).bytes).toBe(own.ram.bytes);
  });
});

