import { KernelError } from '@app/shared/errno';
import { BDF_PATTERN } from '@app/shared/pci/pci.constants';
import { MAX_PASID_WIDTH, MAX_WQ_DEPTH, PCI_ID_MAX } from './vfio.constants';

export interface DeviceConfig {
  bdf: string;
  vendorId: number;
  deviceId: number;
  /** PASID capability Max PASID Width; 0 = no PASID capability */
  pasidWidth: number;
  /** shared work-queue depth */
  wqDepth: number;
}

const isInt = (v: unknown, lo: number, hi: number): boolean => Number.isInteger(v) && (v as number) >= lo && (v as number) <= hi;

export function validateDeviceConfig(c: DeviceConfig): DeviceConfig {
  if (typeof c.bdf !== 'string' || !BDF_PATTERN.test(c.bdf)) throw new KernelError('EINVAL', `device bdf "${c.bdf}" is not dddd:bb:dd.f`);
  if (!isInt(c.vendorId, 0, PCI_ID_MAX) || !isInt(c.deviceId, 0, PCI_ID_MAX)) throw new KernelError('EINVAL', `device ${c.bdf}: vendor/device ids must be 16-bit`);
  if (!isInt(c.pasidWidth, 0, MAX_PASID_WIDTH)) throw new KernelError('EINVAL', `device ${c.bdf}: pasidWidth must be 0..${MAX_PASID_WIDTH}`);
  if (!isInt(c.wqDepth, 1, MAX_WQ_DEPTH)) throw new KernelError('EINVAL', `device ${c.bdf}: wqDepth must be 1..${MAX_WQ_DEPTH}`);
  return { bdf: c.bdf, vendorId: c.vendorId, deviceId: c.deviceId, pasidWidth: c.pasidWidth, wqDepth: c.wqDepth };
}

/** A PCI function bound to vfio-pci; at most one open device fd at a time. */
export class VfioDevice {
  openedBy: { pid: number; fd: number } | null = null;

  constructor(readonly config: DeviceConfig) {}

  get bdf(): string {
    return this.config.bdf;
  }

  /** A pPASID this device can emit: below 2^pasidWidth. */
  canUsePasid(ppasid: number): boolean {
    return this.config.pasidWidth > 0 && ppasid < 2 ** this.config.pasidWidth;
  }
}
