import { KernelError } from '@app/shared/errno';
import { Tx } from '../fault-injection';
import type { IoasidRef } from '../ioasid/fdget';
import { PASID_LIMIT } from '@app/shared/vtd/vtd.constants';
import { NO_PASID } from '../ioasid/ioasid.constants';
import { AddressSpace } from '../memory/address-space';
import { MEMORY_IO_MAX } from '../memory/memory.constants';
import { KernelFile } from '../process/fd-table';
import { KVM_MAX_VCPUS } from './kvm.constants';
import { Memslot, Memslots } from './memslots';
import { checkIa32PasidWrite, checkMsr } from '../cpu/msr';

interface PasidEntry {
  ref: IoasidRef;
  holderKey: string;
}

/**
 * A KVM VM fd: memslots, vCPUs (their IA32_PASID) and the vPASID → pPASID translation table that
 * ENQCMD uses (the VMCS PASID translation of Intel's KVM proposal). Each table entry holds a reference
 * on its ioasid; an entry whose ioasid was destroyed stays (still holding it) but no longer translates.
 */
export class KvmVm implements KernelFile {
  readonly kind = 'kvm-vm';
  readonly memslots = new Memslots();
  private readonly vcpus: { ia32Pasid: number }[] = [];
  private translationEnabled = false;
  private readonly pasidTable = new Map<number, PasidEntry>();
  /** pPASID → vPASID: one ioasid is mapped under at most one vPASID per VM */
  private readonly reverse = new Map<number, number>();

  constructor(
    readonly uid: number,
    readonly fd: number,
    private readonly mm: AddressSpace,
  ) {}

  addMemslot(tx: Tx, slot: Memslot): void {
    this.memslots.add(tx, this.mm, slot);
  }

  readGuest(gpa: number, length: number): Buffer {
    checkLength(length);
    return Buffer.concat(this.memslots.resolve(gpa, length).map((p) => this.mm.read(p.hva, p.length)));
  }

  /** All pieces are checked and faulted in before any byte is copied: EFAULT/ENOMEM write nothing. */
  writeGuest(tx: Tx, gpa: number, data: Buffer): void {
    checkLength(data.length);
    const pieces = this.memslots.resolve(gpa, data.length);
    for (const p of pieces) this.mm.prepareWrite(tx, p.hva, p.length);
    let done = 0;
    for (const p of pieces) {
      this.mm.write(tx, p.hva, data.subarray(done, done + p.length));
      done += p.length;
    }
  }

  createVcpu(tx: Tx): number {
    if (this.vcpus.length >= KVM_MAX_VCPUS) throw new KernelError('EINVAL', `VM fd ${this.fd} already has ${KVM_MAX_VCPUS} vCPUs`);
    const vcpu = { ia32Pasid: 0 };
    tx.do('kvm.vcpu', () => this.vcpus.push(vcpu), () => this.vcpus.pop());
    return this.vcpus.length - 1;
  }

  get vcpuCount(): number {
    return this.vcpus.length;
  }

  vcpuWrmsr(tx: Tx, vcpu: number, msr: string, value: number): void {
    const state = this.vcpu(vcpu);
    const checked = checkIa32PasidWrite(msr, value);
    const was = state.ia32Pasid;
    tx.do('kvm.wrmsr', () => (state.ia32Pasid = checked), () => (state.ia32Pasid = was));
  }

  vcpuRdmsr(vcpu: number, msr: string): number {
    const state = this.vcpu(vcpu);
    checkMsr(msr);
    return state.ia32Pasid;
  }

  get pasidTranslation(): boolean {
    return this.translationEnabled;
  }

  /** Disabling with vPASIDs still mapped → EBUSY (unmap them first). */
  setPasidTranslation(tx: Tx, enabled: boolean): void {
    if (typeof enabled !== 'boolean') throw new KernelError('EINVAL', `enabled must be a boolean`);
    if (!enabled && this.pasidTable.size > 0) throw new KernelError('EBUSY', `VM fd ${this.fd} still maps ${this.pasidTable.size} vPASID(s)`);
    const was = this.translationEnabled;
    tx.do('kvm.pasid-translation', () => (this.translationEnabled = enabled), () => (this.translationEnabled = was));
  }

  /** Checks that need no ioasid: translation on, vPASID in [1, 2^20), vPASID free. */
  checkVpasid(vpasid: number): void {
    if (!this.translationEnabled) throw new KernelError('EINVAL', `VM fd ${this.fd}: PASID translation is not enabled`);
    if (!Number.isInteger(vpasid) || vpasid <= NO_PASID || vpasid >= PASID_LIMIT) {
      throw new KernelError('EINVAL', `vPASID ${vpasid} is outside [1, ${PASID_LIMIT})`);
    }
  }

  /** KVM MAP_PASID: the ioasid must be bound and allowed on a device; takes a reference. */
  mapPasid(tx: Tx, vpasid: number, ref: IoasidRef): void {
    this.checkVpasid(vpasid);
    if (ref.state !== 'bound') throw new KernelError('EINVAL', `ioasid ${ref.ppasid} is ${ref.state}, not bound`);
    if (!ref.allowedOnDevice) throw new KernelError('EINVAL', `ioasid ${ref.ppasid} is not allowed on any device`);
    const current = this.pasidTable.get(vpasid);
    if (current) throw new KernelError('EEXIST', `vPASID ${vpasid} is already mapped to pPASID ${current.ref.ppasid}`);
    const other = this.reverse.get(ref.ppasid);
    if (other !== undefined) throw new KernelError('EBUSY', `ioasid ${ref.ppasid} is already mapped as vPASID ${other} in VM fd ${this.fd}`);
    const entry = { ref, holderKey: `kvm:${this.uid}/${vpasid}` };
    ref.hold(tx, { kind: 'kvm', key: entry.holderKey, vmFd: this.fd, vpasid });
    tx.do('kvm.map-pasid', () => this.setEntry(vpasid, entry), () => this.clearEntry(vpasid, entry));
  }

  /** Clears the entry and drops its reference; returns the pPASID it pointed to (for the journal). */
  unmapPasid(tx: Tx, vpasid: number): number {
    const entry = this.pasidTable.get(vpasid);
    if (!entry) throw new KernelError('ENOENT', `vPASID ${vpasid} is not mapped in VM fd ${this.fd}`);
    const ppasid = entry.ref.ppasid;
    tx.do('kvm.unmap-pasid', () => this.clearEntry(vpasid, entry), () => this.setEntry(vpasid, entry));
    entry.ref.release(tx, entry.holderKey);
    return ppasid;
  }

  /** vPASID → pPASID for ENQCMD; null on a miss, with translation off, or once the ioasid is destroyed. */
  translate(vpasid: number): number | null {
    if (!this.translationEnabled) return null;
    const entry = this.pasidTable.get(vpasid);
    if (!entry || entry.ref.state !== 'bound') return null;
    return entry.ref.ppasid;
  }

  pasidMappings(): { vpasid: number; ppasid: number; translates: boolean }[] {
    return [...this.pasidTable.entries()]
      .sort(([a], [b]) => a - b)
      .map(([vpasid, e]) => ({ vpasid, ppasid: e.ref.ppasid, translates: this.translate(vpasid) !== null }));
  }

  /** VM fd close: drop every vPASID mapping (the leaf references of process death). */
  release(tx: Tx): void {
    for (const vpasid of [...this.pasidTable.keys()].sort((a, b) => a - b)) this.unmapPasid(tx, vpasid);
  }

  private setEntry(vpasid: number, entry: PasidEntry): void {
    this.pasidTable.set(vpasid, entry);
    this.reverse.set(entry.ref.ppasid, vpasid);
  }

  private clearEntry(vpasid: number, entry: PasidEntry): void {
    this.pasidTable.delete(vpasid);
    this.reverse.delete(entry.ref.ppasid);
  }

  private vcpu(index: number): { ia32Pasid: number } {
    const state = Number.isInteger(index) ? this.vcpus[index] : undefined;
    if (!state) throw new KernelError('ENOENT', `VM fd ${this.fd} has no vCPU ${index}`);
    return state;
  }
}

function checkLength(length: number): void {
  if (!Number.isSafeInteger(length) || length < 0 || length > MEMORY_IO_MAX) {
    throw new KernelError('EINVAL', `guest memory access of ${length} bytes (max ${MEMORY_IO_MAX})`);
  }
}
