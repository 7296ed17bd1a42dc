// The devices bound to vfio-pci (from config), and opening one (exclusive: EBUSY for a second opener).
import { KernelError } from '@app/shared/errno';
import type { Tx } from '../fault-injection';
import type { AttachTable } from '../iommu/attach-table';
import type { Process } from '../process/process';
import { BDF_PATTERN } from '@app/shared/pci/pci.constants';
import { type DeviceConfig, validateDeviceConfig, VfioDevice } from './vfio-device';
import { type DrainHook, type ResetHook, VfioDeviceFile } from './vfio-device-file';

export class VfioDevices {
  private readonly devices = new Map<string, VfioDevice>();

  constructor(
    configs: DeviceConfig[],
    private readonly iommu: AttachTable,
    /** Before a route goes: finish or abort in-flight work on it (the data plane fills it in). */
    private readonly drain: DrainHook,
    /** Function-level reset on open and close (the data plane fills it in). */
    private readonly reset: ResetHook,
  ) {
    for (const config of configs) {
      const device = new VfioDevice(validateDeviceConfig(config));
      if (this.devices.has(device.bdf)) throw new KernelError('EEXIST', `device ${device.bdf} is configured twice`);
      this.devices.set(device.bdf, device);
    }
  }

  list(): DeviceConfig[] {
    return [...this.devices.values()].map((d) => ({ ...d.config }));
  }

  all(): VfioDevice[] {
    return [...this.devices.values()];
  }

  get(bdf: string): VfioDevice {
    if (typeof bdf !== 'string' || !BDF_PATTERN.test(bdf)) throw new KernelError('EINVAL', `"${bdf}" is not a PCI address like 0000:6a:01.0`);
    const device = this.devices.get(bdf);
    if (!device) throw new KernelError('ENODEV', `no device ${bdf}`);
    return device;
  }

  /** Opens the device for `proc` (exclusive), resetting it for its new user: returns the new fd. */
  open(tx: Tx, proc: Process, bdf: string): number {
    const device = this.get(bdf);
    if (device.openedBy) throw new KernelError('EBUSY', `device ${bdf} is already open (pid ${device.openedBy.pid} fd ${device.openedBy.fd})`);
    const { fd, file } = proc.fds.install(tx, (n) => new VfioDeviceFile(device, n, this.iommu, this.drain, this.reset));
    tx.do('vfio.open', () => (device.openedBy = { pid: proc.pid, fd }), () => (device.openedBy = null));
    file.open(tx);
    return fd;
  }
}
