// Instructions a host process executes (Intel SDM): WRMSR IA32_PASID, ENQCMD (its PASID untranslated: host
// SVA), ENQCMDS (supervisor-only: #GP at CPL 3). The vCPU forms are in kvm/kvm.ops.ts.
import type { Descriptor, EnqcmdResult } from '@app/shared/contract/host-kernel';
import type { DeviceSet } from '../devices/device-set';
import type { KernelFile } from '../process/fd-table';
import type { Process } from '../process/process';
import { type OpCall, opsFor } from '../dispatch/op';
import { hostEnqcmd, prepareEnqcmd } from './enqcmd';
import { checkIa32PasidWrite } from './msr';
import { devicePortal } from './portal';

interface Deps {
  accelerators: DeviceSet;
}

const op = opsFor<Deps, Process>();
type C<F extends KernelFile = never> = OpCall<Deps, F, Process>;

export const cpuOps = {
  /** WRMSR IA32_PASID (host SVA: ENQCMD then carries this PASID untranslated). */
  wrmsr: op({
    name: 'cpu.wrmsr',
    permit: 'process',
    journal: true,
    run: ({ proc, tx }: C, a: { pid: number; msr: string; value: number }) => {
      const checked = checkIa32PasidWrite(a.msr, a.value);
      const was = proc.ia32Pasid;
      tx.do('process.wrmsr', () => (proc.ia32Pasid = checked), () => (proc.ia32Pasid = was));
    },
    args: (a) => ({ msr: a.msr, value: a.value }),
    self: 'pid',
  }),

  /** ENQCMD: the PASID is the caller's IA32_PASID, untranslated. */
  enqcmd: op({
    name: 'cpu.enqcmd',
    permit: 'process',
    journal: true,
    run: ({ k, proc, tx }: C, a: { pid: number; deviceFd: number; descriptor: Descriptor }): EnqcmdResult => {
      const portal = devicePortal(k.accelerators, proc, a.deviceFd);
      return hostEnqcmd(tx, proc.ia32Pasid, portal, prepareEnqcmd(portal, a.descriptor));
    },
    args: (a) => ({ deviceFd: a.deviceFd, descriptor: a.descriptor }),
    self: 'pid',
  }),

  /** ENQCMDS from a host process: it runs at CPL 3, where ENQCMDS is #GP (supervisor-only). Nothing is submitted. */
  enqcmds: op({
    name: 'cpu.enqcmds',
    permit: 'process',
    journal: true,
    run: ({ k, proc }: C, a: { pid: number; deviceFd: number; descriptor: Descriptor }): EnqcmdResult => {
      prepareEnqcmd(devicePortal(k.accelerators, proc, a.deviceFd), a.descriptor);
      return { result: 'gp', reason: 'cpl3' };
    },
    args: (a) => ({ deviceFd: a.deviceFd, descriptor: a.descriptor }),
    self: 'pid',
  }),
};
