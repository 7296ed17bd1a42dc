import { KernelError } from '@app/shared/errno';
import { STACK_DEVICES } from '../../../../stack/in-process-host';
import { PAGE_SIZE } from '../../../host-kernel/src/memory/memory.constants';
import { closeHosts, type HostFixture, openHost } from '../../../../stack/fixtures/host-kernel';
import { MIB } from '../machine/machine';
import { VmBuilder, VmSpec } from './vm-builder';

const [DSA0, DSA1] = STACK_DEVICES.map((d) => d.bdf);
const SPEC: VmSpec = { name: 'vm1', memoryMiB: 2, vcpus: 2, devices: [DSA0, DSA1] };
const RAM = SPEC.memoryMiB * MIB;

const BUILD_ORDER = [
  'createProcess',
  'mmap',
  'createVm',
  'addMemslot',
  'createVcpu',
  'createVcpu',
  'openIoasid',
  'createFaultQueue',
  'alloc',
  'bindPgtbl',
  'map',
  'listDevices',
  'openDevice',
  'allowIoasid',
  'openDevice',
  'allowIoasid',
  'setPasidTranslation',
];

/** The pid the host gave the VM's process after journal seq `since` (undefined: none was created). */
async function vmPid(host: HostFixture, since: number): Promise<number | undefined> {
  const row = (await host.calledRows(since)).find((r) => r.operation === 'process.create' && r.errno === null);
  return (row?.result as { pid: number } | undefined)?.pid;
}

/** The fds the host gave for each device opened after seq `since`, in the order they were opened. */
async function openedDeviceFds(host: HostFixture, since: number): Promise<number[]> {
  return (await host.calledRows(since)).filter((r) => r.operation === 'vfio.open' && r.errno === null).map((r) => (r.result as { fd: number }).fd);
}

afterEach(closeHosts);

describe('VmBuilder on the real host kernel', () => {
  it('builds in the order of DESIGN §3 with the right arguments', async () => {
    const host = await openHost();
    const mark = await host.mark();
    const vm = await new VmBuilder(host.port).build(SPEC);
    expect(host.door.calls.map((c) => c.method)).toEqual(BUILD_ORDER);
    const { pid, vmFd, ramHva, ioasidFd, gpaIoasid, faultQueue } = vm.handles;
    const rows = await host.calledRows(mark);
    const deviceFds = await openedDeviceFds(host, mark);
    expect(rows.map((r) => [r.operation, r.args, r.errno])).toEqual([
      ['process.create', { comm: `vmm/${SPEC.name}` }, null],
      ['mm.mmap', { pid, length: RAM }, null],
      ['kvm.create_vm', {}, null],
      ['kvm.set_memslot', { vmFd, gpa: 0, size: RAM, hva: ramHva }, null],
      ['kvm.create_vcpu', { vmFd }, null],
      ['kvm.create_vcpu', { vmFd }, null],
      ['ioasid.open', {}, null],
      ['fault.alloc', { fd: ioasidFd }, null],
      ['ioasid.alloc', { fd: ioasidFd }, null],
      ['ioasid.bind_pgtbl', { fd: ioasidFd, ioasid: gpaIoasid, kind: 'iova' }, null],
      ['ioasid.map', { fd: ioasidFd, ioasid: gpaIoasid, iova: 0, hva: ramHva, length: RAM, read: true, write: true }, null],
      ['vfio.open', { bdf: DSA0 }, null],
      ['vfio.allow_ioasid', { deviceFd: deviceFds[0], ioasidFd, ioasid: gpaIoasid, mode: 'rid' }, null],
      ['vfio.open', { bdf: DSA1 }, null],
      ['vfio.allow_ioasid', { deviceFd: deviceFds[1], ioasidFd, ioasid: gpaIoasid, mode: 'rid' }, null],
      ['kvm.pasid_translation', { vmFd, enabled: true }, null],
    ]);
    expect(rows.slice(1).every((r) => r.actor === `pid:${pid}`)).toBe(true);

    // What the host now holds for the VM, read from the host.
    const s = host.state();
    // A fresh vCPU's IA32_PASID is 0 (valid clear) until the guest writes it.
    expect(s.vms).toEqual([{ pid, fd: vmFd, memslots: [{ gpa: 0, size: RAM, hva: ramHva }], vcpus: SPEC.vcpus, ia32Pasids: Array(SPEC.vcpus).fill(0), translation: true, pasids: [] }]);
    expect(s.ioasids).toEqual([
      expect.objectContaining({ id: gpaIoasid, state: 'bound', owner: { pid, fd: ioasidFd }, holders: { devices: [`${DSA0}/rid`, `${DSA1}/rid`], kvm: [], children: [] } }),
    ]);
    expect(s.routes.map((r) => [r.bdf, r.ppasid, r.ioasid, r.blocked])).toEqual([
      [DSA0, null, gpaIoasid, false],
      [DSA1, null, gpaIoasid, false],
    ]);
    expect(s.devices).toEqual([
      { bdf: DSA0, openedBy: { pid, fd: deviceFds[0] }, queued: 0, engineRunning: true },
      { bdf: DSA1, openedBy: { pid, fd: deviceFds[1] }, queued: 0, engineRunning: true },
    ]);
    expect(s.pins).toHaveLength(RAM / PAGE_SIZE);
    expect(s.faultQueues).toEqual([{ pid, fd: ioasidFd, id: faultQueue, users: 0, unread: [], awaiting: [] }]);
    expect(vm.machine.devices.map((d) => d.vrid)).toEqual([0x08, 0x10]);
    expect(vm.handles.vcpus).toEqual([0, 1]);
  });

  it('teardown is the exact reverse and leaves nothing held, nothing released by process death', async () => {
    const host = await openHost();
    const builder = new VmBuilder(host.port);
    const built = await host.mark();
    const vm = await builder.build(SPEC);
    const { pid, vmFd, ioasidFd, gpaIoasid, faultQueue } = vm.handles;
    const deviceFds = await openedDeviceFds(host, built);
    const mark = await host.mark();
    expect(await builder.teardown(vm)).toEqual([]);
    const rows = await host.calledRows(mark);
    expect(rows.map((r) => [r.operation, r.args, r.errno])).toEqual([
      ['kvm.pasid_translation', { vmFd, enabled: false }, null],
      ['vfio.disallow_ioasid', { deviceFd: deviceFds[1], ioasidFd, ioasid: gpaIoasid }, null],
      ['fd.close', { fd: deviceFds[1] }, null],
      ['vfio.disallow_ioasid', { deviceFd: deviceFds[0], ioasidFd, ioasid: gpaIoasid }, null],
      ['fd.close', { fd: deviceFds[0] }, null],
      ['ioasid.unmap', { fd: ioasidFd, ioasid: gpaIoasid, all: true }, null],
      ['ioasid.destroy', { fd: ioasidFd, ioasid: gpaIoasid }, null],
      ['fault.destroy', { fd: ioasidFd, faultQueue }, null],
      ['fd.close', { fd: ioasidFd }, null],
      ['fd.close', { fd: vmFd }, null],
      ['process.exit', { pid }, null],
    ]);
    expect(host.heldAtExit(pid)).toEqual([]);
    expect(host.leftovers(pid)).toEqual([]);
  });

  it('fail_nth: failing call n unwinds everything done before it, explicitly, and rethrows the errno', async () => {
    const host = await openHost();
    let n = 1;
    for (; ; n++) {
      host.resetCalls();
      let count = 0;
      host.failWhen(() => (++count === n ? 'ENOMEM' : null));
      const mark = await host.mark();
      let failed: unknown = null;
      try {
        await new VmBuilder(host.port).build(SPEC);
      } catch (err) {
        failed = err;
      }
      if (failed === null) break;
      expect(failed).toBeInstanceOf(KernelError);
      expect((failed as KernelError).errno).toBe('ENOMEM');
      expect(host.door.calls.slice(0, n).map((c) => c.method)).toEqual(BUILD_ORDER.slice(0, n));
      expect(host.door.calls[n - 1].injected).toBe('ENOMEM');
      // The unwind: every call of it accepted by the host, everything released before the process died.
      expect((await host.ops(mark)).filter((op) => op.includes('!'))).toEqual([]);
      const pid = await vmPid(host, mark);
      expect(pid === undefined).toBe(n === 1);
      if (pid !== undefined) expect(host.heldAtExit(pid)).toEqual([]);
      expect(host.leftovers(pid)).toEqual([]);
    }
    expect(n).toBe(BUILD_ORDER.length + 1);
  });

  it('an unknown device fails the build with ENODEV and leaves nothing', async () => {
    const host = await openHost({ devices: STACK_DEVICES.filter((d) => d.bdf !== DSA1) });
    const mark = await host.mark();
    await expect(new VmBuilder(host.port).build(SPEC)).rejects.toMatchObject({ errno: 'ENODEV' });
    const pid = await vmPid(host, mark);
    expect(pid).toBeDefined();
    expect(host.heldAtExit(pid as number)).toEqual([]);
    expect(host.leftovers(pid)).toEqual([]);
  });

  it('a device another process holds open fails the build with the host EBUSY and leaves nothing', async () => {
    const host = await openHost();
    const other = await host.process('other tenant');
    const otherFd = await other.k.openDevice(DSA1);
    const mark = await host.mark();
    await expect(new VmBuilder(host.port).build(SPEC)).rejects.toMatchObject({ errno: 'EBUSY' });
    expect((await host.ops(mark)).filter((op) => op.includes('!'))).toEqual(['vfio.open!EBUSY']);
    const pid = await vmPid(host, mark);
    expect(host.heldAtExit(pid as number)).toEqual([]);
    expect(host.leftovers(pid)).toEqual([]);
    // The other tenant keeps its device.
    expect(host.heldBy(other.pid)).toEqual([`fd ${otherFd} (device)`, `device ${DSA1} open`]);
  });

  it('a bad spec is refused with EINVAL before any host call', async () => {
    const host = await openHost();
    const mark = await host.mark();
    await expect(new VmBuilder(host.port).build({ ...SPEC, vcpus: 0 })).rejects.toMatchObject({ errno: 'EINVAL' });
    expect(host.door.calls).toEqual([]);
    expect(await host.rows(mark)).toEqual([]);
  });
});
