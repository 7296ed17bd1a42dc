// The ENQCMD portal behind a VFIO device fd of the caller: the device's shared work queue.
import { DESCRIPTOR_SIZE } from '@app/shared/dsa/dsa.constants';
import type { Accelerator } from '../devices/accelerator';
import type { DeviceSet } from '../devices/device-set';
import type { Process } from '../process/process';
import type { VfioDevice } from '../vfio/vfio-device';
import { VfioDeviceFile } from '../vfio/vfio-device-file';
import type { EnqcmdPortal } from './enqcmd';

/**
 * One portal per device, made on its first ENQCMD (its bdf and PASID capability are fixed by the device's config),
 * keyed by the VFIO device an fd opens: an ENQCMD finds it from its device fd with no lookup by bdf.
 */
const portals = new WeakMap<VfioDevice, EnqcmdPortal>();
/** Descriptor buffers a portal keeps for the next ENQCMDs: as many as could be in flight at once is plenty. */
const SPARE_DESCRIPTORS = 8;

export function devicePortal(accelerators: DeviceSet, proc: Process, deviceFd: number): EnqcmdPortal {
  const device = proc.fds.get(deviceFd, 'device', VfioDeviceFile).device;
  let portal = portals.get(device);
  if (!portal) {
    const bdf = device.bdf;
    const accelerator: Accelerator = accelerators.accelerator(bdf);
    // A buffer goes back to `spare` only after the device copied it into its slot (or refused it): an ENQCMD
    // waiting for its commit keeps its own, so two calls in flight never share one.
    const spare: Buffer[] = [];
    portal = {
      bdf,
      pasidCapable: accelerators.pasidCapable(bdf),
      full: () => accelerator.full,
      descriptorBuffer: () => spare.pop() ?? Buffer.allocUnsafeSlow(DESCRIPTOR_SIZE),
      submit: (ppasid, d) => {
        const answer = accelerator.submit(ppasid, d);
        if (spare.length < SPARE_DESCRIPTORS) spare.push(d);
        return answer;
      },
    };
    portals.set(device, portal);
  }
  return portal;
}
