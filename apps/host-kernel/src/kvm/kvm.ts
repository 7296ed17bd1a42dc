// /dev/kvm: KVM_CREATE_VM hands out VM fds; each VM has a uid that never repeats (holder keys name it, so a
// new VM on a reused fd number never matches an old VM's references).
import type { Tx } from '../fault-injection';
import type { Process } from '../process/process';
import { KvmVm } from './kvm-vm';

export class Kvm {
  private nextVmUid = 1;

  createVm(tx: Tx, proc: Process): number {
    const uid = tx.do('kvm.create-vm', () => this.nextVmUid++, () => this.nextVmUid--);
    return proc.fds.install(tx, (fd) => new KvmVm(uid, fd, proc.mm)).fd;
  }
}
