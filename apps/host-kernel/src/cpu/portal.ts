// The ENQCMD portal behind a VFIO device fd of the caller: the device's shared work queue.
import type { Accelerator } from '../devices/accelerator';
import type { DeviceSet } from '../devices/device-set';
import type { Process } from '../process/process';
import { VfioDeviceFile } from '../vfio/vfio-device-file';
import type { EnqcmdPortal } from './enqcmd';

/** One portal per device, made on its first ENQCMD (its bdf and PASID capability are fixed by the device's config). */
const portals = new WeakMap<Accelerator, EnqcmdPortal>();

export function devicePortal(accelerators: DeviceSet, proc: Process, deviceFd: number): EnqcmdPortal {
  const bdf = proc.fds.get(deviceFd, 'device', VfioDeviceFile).bdf;
  const accelerator = accelerators.accelerator(bdf);
  let portal = portals.get(accelerator);
  if (!portal) {
    portal = { bdf, pasidCapable: accelerators.pasidCapable(bdf), full: () => accelerator.full, submit: (ppasid, d) => accelerator.submit(ppasid, d) };
    portals.set(accelerator, portal);
  }
  return portal;
}
