// Test double of the VMM (VmmPort) for the guest's unit tests: guest RAM is a Buffer; a small vIOMMU reads
// the PASID entries the guest wrote (shared codecs) on pasid-cache; a small device model executes accepted
// descriptors by walking the process's page table through the bound entry, as the IOMMU would.
import { encodeCompletion } from '@app/shared/dsa/descriptor';
import type { Descriptor, EnqcmdResult } from '@app/shared/contract/host-kernel';
import { Errno, KernelError } from '@app/shared/errno';
import { decodePasidDirEntry, decodePasidEntry, pasidDirEntryOffset, pasidTableEntryOffset } from '@app/shared/vtd/pasid-entry';
import { IA32_PASID_VALID } from '@app/shared/x86/msr.constants';
import { walk4Level, WalkMemory } from '@app/shared/x86/walk';
import type { GuestFault, GuestMachine, InvalidationDescriptor, InvalidationResult, VmmPort } from '../vmm.port';


export class FakeVmm implements VmmPort {
  readonly ram: Buffer;
  readonly calls: string[] = [];
  readonly invalidations: InvalidationDescriptor[][] = [];
  readonly contexts = new Map<number, number>();
  /** (vrid:vpasid) → first-level root (null = pass-through), as mirrored on the last pasid-cache. */
  readonly bound = new Map<string, number | null>();
  readonly msrs = new Map<number, number>();
  /** Accepted descriptors, with the IA32_PASID value of the vCPU when its ENQCMD ran. */
  readonly submitted: Array<{ vcpu: number; vrid: number; descriptor: Descriptor; ia32Pasid: number }> = [];
  /** Refuse the entry of (vrid, vpasid) with this errno on pasid-cache. */
  refuse: ((vrid: number, vpasid: number) => Errno | null) | null = null;
  /** Fail the piotlb of this vPASID with this errno (a fault in the result, as the vIOMMU reports it). */
  refusePiotlb: ((vpasid: number) => Errno | null) | null = null;
  /** Results handed out by enqcmd before the normal behaviour ('accepted' and the device runs). */
  enqcmdScript: Array<'retry' | 'gp'> = [];
  /** Accepted descriptors complete after this many completion-record reads (0 = at once). */
  completeAfterReads = 0;
  /** Accepted descriptors never complete. */
  hang = false;
  private faultSeq = 0;
  private pending: Array<{ readsLeft: number; run: () => void; completion: number; cr3: number | null }> = [];

  constructor(readonly machineInfo: GuestMachine) {
    this.ram = Buffer.alloc(machineInfo.memoryMiB * 1024 * 1024);
  }

  async machine(): Promise<GuestMachine> {
    this.calls.push('machine');
    return structuredClone(this.machineInfo);
  }

  private range(gpa: number, length: number): void {
    if (!Number.isSafeInteger(gpa) || gpa < 0 || gpa + length > this.ram.length) throw new KernelError('EFAULT', `gpa 0x${gpa.toString(16)}+${length} outside RAM`);
  }

  async readMemory(gpa: number, length: number): Promise<Buffer> {
    this.calls.push('readMemory');
    this.range(gpa, length);
    // A completion record being polled: let pending work finish after its countdown.
    for (const p of [...this.pending]) {
      if (p.readsLeft-- <= 0) {
        p.run();
        this.pending = this.pending.filter((x) => x !== p);
      }
    }
    return Buffer.from(this.ram.subarray(gpa, gpa + length));
  }

  async writeMemory(gpa: number, data: Buffer): Promise<void> {
    this.calls.push('writeMemory');
    this.range(gpa, data.length);
    data.copy(this.ram, gpa);
  }

  async setContext(vrid: number, pasidDirGpa: number): Promise<void> {
    this.calls.push('setContext');
    if (!this.machineInfo.devices.some((d) => d.vrid === vrid)) throw new KernelError('ENODEV', `no vrid ${vrid}`);
    this.contexts.set(vrid, pasidDirGpa);
  }

  async invalidate(descriptors: InvalidationDescriptor[]): Promise<InvalidationResult> {
    this.calls.push('invalidate');
    this.invalidations.push(structuredClone(descriptors));
    const faults: GuestFault[] = [];
    for (const d of descriptors) {
      if (d.type === 'piotlb') {
        const errno = this.refusePiotlb?.(d.vpasid) ?? null;
        if (errno) faults.push({ seq: ++this.faultSeq, vrid: null, vpasid: d.vpasid, code: 0xf2, reason: 'VMM: host refused', errno });
        continue;
      }
      if (d.type !== 'pasid-cache' || d.vpasid === undefined) continue;
      const v = d.vpasid;
      for (const [vrid, dir] of this.contexts) {
        const de = decodePasidDirEntry(this.ram.readBigUInt64LE(dir + pasidDirEntryOffset(v)));
        const pe = de.present ? decodePasidEntry(this.ram.subarray(de.tableGpa + pasidTableEntryOffset(v), de.tableGpa + pasidTableEntryOffset(v) + 64)) : null;
        const key = `${vrid}:${v}`;
        if (!pe || !pe.present) {
          this.bound.delete(key);
          continue;
        }
        const errno = this.refuse?.(vrid, v) ?? null;
        if (errno) {
          faults.push({ seq: ++this.faultSeq, vrid, vpasid: v, code: 0xf2, reason: 'VMM: refused', errno });
          this.bound.delete(key);
        } else {
          this.bound.set(key, pe.pgtt === 4 ? null : pe.flptr);
        }
      }
    }
    return { completed: descriptors.length, faults };
  }

  async wrmsr(vcpu: number, _msr: 'IA32_PASID', value: number): Promise<void> {
    this.calls.push('wrmsr');
    this.msrs.set(vcpu, value);
  }

  async enqcmd(vcpu: number, vrid: number, descriptor: Descriptor): Promise<EnqcmdResult> {
    this.calls.push('enqcmd');
    const scripted = this.enqcmdScript.shift();
    if (scripted === 'retry') return { result: 'retry', reason: 'queue-full' };
    if (scripted === 'gp') return { result: 'gp', reason: 'scripted' };
    const msr = this.msrs.get(vcpu) ?? 0;
    if ((msr & IA32_PASID_VALID) === 0) return { result: 'gp', reason: 'ia32-pasid-invalid' };
    const key = `${vrid}:${msr & 0xfffff}`;
    if (!this.bound.has(key)) return { result: 'gp', reason: 'vpasid-unmapped' };
    this.submitted.push({ vcpu, vrid, descriptor: { ...descriptor }, ia32Pasid: msr });
    const cr3 = this.bound.get(key) as number | null;
    if (!this.hang) {
      const p = { readsLeft: this.completeAfterReads, run: () => this.execute(descriptor, cr3), completion: descriptor.completion, cr3 };
      if (this.completeAfterReads === 0) p.run();
      else this.pending.push(p);
    }
    return { result: 'accepted' };
  }

  /** DMA by the device: every address goes through the process's first-level table. */
  private execute(d: Descriptor, cr3: number | null): void {
    const mem: WalkMemory = { readU64: (a) => (a + 8 <= this.ram.length ? this.ram.readBigUInt64LE(a) : null) };
    const tr = (va: number, write: boolean): number => {
      if (cr3 === null) return va;
      const r = walk4Level(cr3, va, { write }, mem);
      if (!r.ok) throw new KernelError('EFAULT', `device fault at 0x${va.toString(16)}: ${r.reason}`);
      return r.address;
    };
    const len = d.length ?? 0;
    for (let i = 0; i < len; i++) {
      if (d.op === 'memmove') this.ram[tr((d.dst as number) + i, true)] = this.ram[tr((d.src as number) + i, false)];
      if (d.op === 'fill') this.ram[tr((d.dst as number) + i, true)] = (d.pattern ?? 0) & 0xff;
    }
    encodeCompletion({ status: 1, bytesCompleted: d.op === 'noop' ? 0 : len }).copy(this.ram, tr(d.completion, true));
  }
}
