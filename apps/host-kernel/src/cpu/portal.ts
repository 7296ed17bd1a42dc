// The ENQCMD portal behind a VFIO device fd of the caller: the device's shared work queue.
import type { DeviceSet } from '../devices/device-set';
import type { Process } from '../process/process';
import { VfioDeviceFile } from '../vfio/vfio-device-file';
import type { EnqcmdPortal } from './enqcmd';

export function devicePortal(accelerators: DeviceSet, proc: Process, deviceFd: number): EnqcmdPortal {
  const bdf = proc.fds.get(deviceFd, 'device', VfioDeviceFile).bdf;
  const accelerator = accelerators.accelerator(bdf);
  return { bdf, pasidCapable: accelerators.pasidCapable(bdf), full: () => accelerator.full, submit: (ppasid, d) => accelerator.submit(ppasid, d) };
}
