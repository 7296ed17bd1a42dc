import { KernelError } from '@app/shared/errno';
import { FakeHostKernel } from './fake-host-kernel';
import { VmBuilder, VmSpec } from './vm-builder';

const DEVICES = [
  { bdf: '0000:6a:01.0', vendorId: 0x8086, deviceId: 0x0b25, pasidWidth: 20, wqDepth: 32 },
  { bdf: '0000:6b:01.0', vendorId: 0x8086, deviceId: 0x0b25, pasidWidth: 20, wqDepth: 32 },
];
const SPEC: VmSpec = { name: 'vm1', memoryMiB: 2, vcpus: 2, devices: ['0000:6a:01.0', '0000:6b:01.0'] };

const BUILD_ORDER = [
  'createProcess',
  'mmap',
  'createVm',
  'addMemslot',
  'createVcpu',
  'createVcpu',
  'openIoasid',
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

describe('VmBuilder', () => {
  it('builds in the order of DESIGN §3 with the right arguments', async () => {
    const hk = new FakeHostKernel(DEVICES);
    const vm = await new VmBuilder(hk).build(SPEC);
    expect(hk.calls).toEqual(BUILD_ORDER);
    const ram = 2 * 1024 * 1024;
    expect(hk.log.find((c) => c.op === 'mmap')?.args).toEqual([vm.handles.pid, ram]);
    expect(hk.log.find((c) => c.op === 'addMemslot')?.args).toEqual([vm.handles.vmFd, { gpa: 0, size: ram, hva: vm.handles.ramHva }]);
    expect(hk.log.find((c) => c.op === 'bindPgtbl')?.args[2]).toEqual({ kind: 'iova' });
    expect(hk.log.find((c) => c.op === 'map')?.args[2]).toEqual({ iova: 0, hva: vm.handles.ramHva, length: ram, read: true, write: true });
    const allows = hk.log.filter((c) => c.op === 'allowIoasid').map((c) => c.args[1]);
    expect(allows).toEqual([
      { ioasidFd: vm.handles.ioasidFd, ioasid: vm.handles.gpaIoasid, mode: 'rid' },
      { ioasidFd: vm.handles.ioasidFd, ioasid: vm.handles.gpaIoasid, mode: 'rid' },
    ]);
    expect(vm.machine.devices.map((d) => d.vrid)).toEqual([0x08, 0x10]);
    expect(vm.handles.vcpus).toEqual([0, 1]);
  });

  it('teardown is the exact reverse and leaves nothing held, nothing released implicitly', async () => {
    const hk = new FakeHostKernel(DEVICES);
    const builder = new VmBuilder(hk);
    const vm = await builder.build(SPEC);
    hk.calls.length = 0;
    expect(await builder.teardown(vm)).toEqual([]);
    expect(hk.calls).toEqual([
      'setPasidTranslation',
      'disallowIoasid',
      'closeFd',
      'disallowIoasid',
      'closeFd',
      'unmap',
      'destroy',
      'closeFd',
      'closeFd',
      'killProcess',
    ]);
    expect(hk.held()).toEqual([]);
    expect(hk.implicitReleases).toEqual([]);
  });

  it('fail_nth: failing call n unwinds everything done before it, explicitly, and rethrows the errno', async () => {
    let n = 1;
    for (; ; n++) {
      const hk = new FakeHostKernel(DEVICES);
      hk.failAt = n;
      hk.failErrno = 'ENOMEM';
      let failed: unknown = null;
      try {
        await new VmBuilder(hk).build(SPEC);
      } catch (err) {
        failed = err;
      }
      if (failed === null) break;
      expect(failed).toBeInstanceOf(KernelError);
      expect((failed as KernelError).errno).toBe('ENOMEM');
      expect(hk.calls.slice(0, n)).toEqual(BUILD_ORDER.slice(0, n));
      expect(hk.held()).toEqual([]);
      expect(hk.implicitReleases).toEqual([]);
    }
    expect(n).toBe(BUILD_ORDER.length + 1);
  });

  it('an unknown or busy device fails the build with the host errno and leaves nothing', async () => {
    const hk = new FakeHostKernel(DEVICES.slice(0, 1));
    await expect(new VmBuilder(hk).build(SPEC)).rejects.toMatchObject({ errno: 'ENODEV' });
    expect(hk.held()).toEqual([]);
    const hk2 = new FakeHostKernel(DEVICES);
    hk2.failWhen = (op, args) => (op === 'openDevice' && args[0] === '0000:6b:01.0' ? 'EBUSY' : null);
    await expect(new VmBuilder(hk2).build(SPEC)).rejects.toMatchObject({ errno: 'EBUSY' });
    expect(hk2.held()).toEqual([]);
    expect(hk2.implicitReleases).toEqual([]);
  });

  it('a bad spec is refused with EINVAL before any host call', async () => {
    const hk = new FakeHostKernel(DEVICES);
    await expect(new VmBuilder(hk).build({ ...SPEC, vcpus: 0 })).rejects.toMatchObject({ errno: 'EINVAL' });
    expect(hk.calls).toEqual([]);
  });
});
