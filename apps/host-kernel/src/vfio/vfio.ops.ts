// VFIO calls (DESIGN §2): list and open devices, DEVICE_ALLOW_IOASID / DEVICE_DISALLOW_IOASID. VFIO is the only
// layer that knows PCI devices; it reaches ioasids only through ioasid/fdget.ts.
import type { KernelFile } from '../process/fd-table';
import type { Process } from '../process/process';
import { fdArg, type OpCall, opsFor } from '../dispatch/op';
import { fdget, fdgetOrNull } from '../ioasid/fdget';
import type { IoasidLayer } from '../ioasid/ioasid-layer';
import type { DeviceConfig } from './vfio-device';
import { type AllowMode, VfioDeviceFile } from './vfio-device-file';
import type { VfioDevices } from './vfio-devices';

interface Deps {
  ioasids: IoasidLayer;
  vfio: VfioDevices;
}

const op = opsFor<Deps, Process>();
type C<F extends KernelFile = never> = OpCall<Deps, F, Process>;
const deviceFd = fdArg('deviceFd', 'device', VfioDeviceFile);

export const vfioOps = {
  /** The assignable devices (from config). */
  listDevices: op({
    name: 'vfio.list_devices',
    permit: 'process-or-admin',
    journal: false,
    run: ({ k }: C, _a: Record<string, never>): DeviceConfig[] => k.vfio.list(),
  }),

  /** Opens the device; exclusive (a second opener gets EBUSY); the device is reset for its new user. */
  open: op({
    name: 'vfio.open',
    permit: 'process',
    journal: true,
    run: ({ k, proc, tx }: C, a: { bdf: string }) => ({ fd: k.vfio.open(tx, proc, a.bdf) }),
    object: (a) => `device:${a.bdf}`,
  }),

  /** DEVICE_ALLOW_IOASID: route the device's RID (or RID+PASID=ioasid) to the ioasid's page table; takes a reference. */
  allowIoasid: op({
    name: 'vfio.allow_ioasid',
    permit: 'process',
    journal: true,
    fd: deviceFd,
    run: ({ k, proc, file, tx }: C<VfioDeviceFile>, a: { deviceFd: number; ioasidFd: number; ioasid: number; mode: AllowMode }) =>
      file.allow(tx, fdget(k.ioasids, proc.fds, a.ioasidFd, a.ioasid), a.mode),
    object: (a) => `ioasid:${a.ioasid}`,
  }),

  /** DEVICE_DISALLOW_IOASID: block the route, drain in-flight work, drop the reference (vfio-device-file.ts). */
  disallowIoasid: op({
    name: 'vfio.disallow_ioasid',
    permit: 'process',
    journal: true,
    fd: deviceFd,
    run: ({ k, proc, file, tx }: C<VfioDeviceFile>, a: { deviceFd: number; ioasidFd: number; ioasid: number }) => ({
      changed: file.disallowNamed(tx, (opts) => fdgetOrNull(k.ioasids, proc.fds, a.ioasidFd, a.ioasid, opts)),
    }),
    object: (a) => `ioasid:${a.ioasid}`,
  }),
};
