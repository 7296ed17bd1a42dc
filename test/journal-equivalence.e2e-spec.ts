// DESIGN §8: one model, two transports. The demo runs once on the three spawned apps and once on the in-process
// stack; each app's journal must hold the same rows (operation, actor, object, args, result, errno), in order.
import { InProcessStack } from '../stack/in-process-stack';
import { comparable, inProcessDriver, restDriver, restJournal, runDemo } from './harness/demo-flow';
import { useStack } from './harness/hooks';

const stack = useStack(async (s) => {
  await s.startHost({ MEMORY_MIB: '1024' });
  await s.startVmm();
});

describe('the in-process stack and the three processes journal the same run', () => {
  it('the demo gives equal host, VMM and guest journals on both transports', async () => {
    const rest = restDriver(stack());
    const overRest = await runDemo(rest);
    expect(overRest.copied.equals(overRest.bytes)).toBe(true);
    const restGuest = comparable(await restJournal(rest.guestUrls.get(overRest.vmId) as string));
    await rest.deleteVm(overRest.vmId);
    const restRows = { host: comparable(await restJournal(stack().host.url)), vmm: comparable(await restJournal(stack().vmmApp.url)), guest: restGuest };

    const local = await InProcessStack.create({ memoryMiB: 1024 });
    let localRows: typeof restRows;
    try {
      const driver = inProcessDriver(local);
      const inProcess = await runDemo(driver);
      expect(inProcess.copied.equals(inProcess.bytes)).toBe(true);
      expect(inProcess.done).toEqual(overRest.done);
      const guest = comparable((await local.journals()).guests.get(inProcess.vmId) ?? []);
      await driver.deleteVm(inProcess.vmId);
      await local.settle();
      const j = await local.journals();
      localRows = { host: comparable(j.host), vmm: comparable(j.vmm), guest };
    } finally {
      await local.close();
    }
    // The run really went through every layer: the bind's four host calls are there.
    expect(restRows.host.map((r) => r.operation)).toEqual(expect.arrayContaining(['ioasid.alloc', 'ioasid.bind_pgtbl', 'vfio.allow_ioasid', 'kvm.map_pasid', 'kvm.unmap_pasid', 'ioasid.destroy', 'process.exit']));
    expect(restRows.guest.map((r) => r.operation)).toEqual(expect.arrayContaining(['guest.boot', 'sva.bind', 'accel.submit', 'sva.unbind']));
    expect(restRows.host.length).toBeGreaterThan(40);
    // Inputs (DESIGN §9) are marked alike on both doors: the operator's calls, with their requests; a peer's never.
    expect(restRows.vmm.find((r) => r.operation === 'vm.create')).toMatchObject({ input: true, request: { kind: 'http', method: 'POST', path: '/v1/vms', principal: 'admin' } });
    expect(restRows.guest.find((r) => r.operation === 'sva.bind')).toMatchObject({ input: true, request: { app: 'guest', path: '/v1/sva/bind', principal: 'none' } });
    expect(restRows.guest.find((r) => r.operation === 'guest.boot')).toMatchObject({ input: true, request: { kind: 'boot', vm: overRest.vmId } });
    expect(restRows.host.filter((r) => r.input)).toEqual([]);
    expect(localRows.host).toEqual(restRows.host);
    expect(localRows.vmm).toEqual(restRows.vmm);
    expect(localRows.guest).toEqual(restRows.guest);
  });
});
