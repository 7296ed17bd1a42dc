import { AddressSpace } from '../memory/address-space';
import { FdTable } from './fd-table';

export type ProcessState = 'running' | 'exited';

/** A host process: an fd table, an address space, and its IA32_PASID (the MSR ENQCMD reads). */
export class Process {
  state: ProcessState = 'running';
  readonly fds: FdTable;
  ia32Pasid = 0;

  constructor(
    readonly pid: number,
    readonly comm: string,
    readonly token: string,
    readonly mm: AddressSpace,
  ) {
    this.fds = new FdTable(pid);
  }
}
