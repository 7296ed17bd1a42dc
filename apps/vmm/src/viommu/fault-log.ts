// The vIOMMU's fault log: bounded, newest kept, numbered (VT-d fault recording registers, §7.2).
import type { Errno } from '@app/shared/errno';
import { FAULT_LOG_CAPACITY, viommuFaultReason, type ViommuFaultReason } from './viommu.constants';
import type { VirtualFault } from './viommu.types';

export interface FaultInput {
  vrid: number | null;
  vpasid: number;
  reason: ViommuFaultReason;
  errno: Errno;
  detail?: string;
  address?: number;
  access?: 'read' | 'write';
  /** Overrides of the code and name (a host DMA fault keeps the VT-d reason the host IOMMU gave). */
  code?: number;
  reasonText?: string;
}

export class FaultLog {
  private seq = 0;
  private readonly records: VirtualFault[] = [];

  constructor(private readonly capacity = FAULT_LOG_CAPACITY) {}

  record(input: FaultInput): VirtualFault {
    const spec = viommuFaultReason(input.reason);
    const fault: VirtualFault = {
      seq: ++this.seq,
      vrid: input.vrid,
      vpasid: input.vpasid,
      code: input.code ?? spec.code,
      reason: input.reasonText ?? spec.text,
      errno: input.errno,
    };
    if (input.address !== undefined) fault.address = input.address;
    if (input.access !== undefined) fault.access = input.access;
    if (input.detail !== undefined) fault.detail = input.detail;
    this.records.push(fault);
    if (this.records.length > this.capacity) this.records.splice(0, this.records.length - this.capacity);
    return fault;
  }

  list(): VirtualFault[] {
    return this.records.map((f) => ({ ...f }));
  }

  /** Drops every record (guest reset). Numbering goes on, so a record is never confused with an older one. */
  clear(): void {
    this.records.length = 0;
  }
}
