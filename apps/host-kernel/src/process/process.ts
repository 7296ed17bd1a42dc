import { AddressSpace } from '../memory/address-space';
import { FdTable } from './fd-table';

export type ProcessState = 'running' | 'exited';

/** A host process: an fd table, an address space, and its IA32_PASID (the MSR ENQCMD reads). */
export class Process {
  state: ProcessState = 'running';
  ia32Pasid = 0;

  constructor(
    readonly pid: number,
    readonly comm: string,
    readonly token: string,
    readonly mm: AddressSpace,
    readonly fds: FdTable = new FdTable(pid),
    /** Who created it (limits/limits.ts PROCESS_LIMIT counts running processes per creator). */
    readonly creator: string = 'anyone',
  ) {}
}
