import { errnoOf } from '@app/shared/errno.testing';
import { Tx } from '../fault-injection';
import { FdTable, type KernelFile } from './fd-table';

class DeviceFile implements KernelFile {
  readonly kind = 'device';
  release(): void {}
}
class ResetDeviceFile extends DeviceFile {}
class OtherDeviceFile implements KernelFile {
  readonly kind = 'device';
  release(): void {}
}

describe('FdTable typed lookup', () => {
  it('answers the file of the right kind and class (a subclass too), EBADF for anything else', () => {
    const t = new FdTable(7);
    const a = t.install(new Tx(), () => new DeviceFile()).fd;
    const b = t.install(new Tx(), () => new ResetDeviceFile()).fd;
    const c = t.install(new Tx(), () => new OtherDeviceFile()).fd;
    expect(t.get(a, 'device', DeviceFile)).toBeInstanceOf(DeviceFile);
    expect(t.get(b, 'device', DeviceFile)).toBeInstanceOf(ResetDeviceFile);
    expect(errnoOf(() => t.get(c, 'device', DeviceFile))).toBe('EBADF'); // same kind, another class
    expect(errnoOf(() => t.get(a, 'ioasid', DeviceFile))).toBe('EBADF');
    expect(errnoOf(() => t.get(a, 'device', ResetDeviceFile))).toBe('EBADF'); // a base-class file is not the subclass
    expect(errnoOf(() => t.get(99, 'device', DeviceFile))).toBe('EBADF');
  });
});
