import { KernelError } from '@app/shared/errno';
import { Tx } from '../fault-injection';
import { AddressSpace } from '../memory/address-space';
import { pageAligned } from '../memory/memory.constants';
import { GPA_LIMIT } from './kvm.constants';

export interface Memslot {
  gpa: number;
  size: number;
  hva: number;
}

/** A VM's memslots (KVM_SET_USER_MEMORY_REGION): GPA ranges backed by the VMM's own memory. */
export class Memslots {
  private readonly slots: Memslot[] = []; // sorted by gpa, disjoint

  add(tx: Tx, mm: AddressSpace, s: Memslot): void {
    if (!pageAligned(s.gpa) || !pageAligned(s.size) || !pageAligned(s.hva) || s.size === 0) {
      throw new KernelError('EINVAL', `memslot gpa, size and hva must be page aligned and size > 0`);
    }
    if (s.gpa + s.size > GPA_LIMIT) throw new KernelError('EINVAL', `memslot [0x${s.gpa.toString(16)}, +${s.size}) goes beyond 2^52`);
    const clash = this.slots.find((o) => o.gpa < s.gpa + s.size && s.gpa < o.gpa + o.size);
    if (clash) throw new KernelError('EEXIST', `memslot [0x${s.gpa.toString(16)}, +${s.size}) overlaps the slot at gpa 0x${clash.gpa.toString(16)}`);
    if (!mm.isMapped(s.hva, s.size)) throw new KernelError('EFAULT', `memslot hva [0x${s.hva.toString(16)}, +${s.size}) is not mapped in the VMM`);
    const slot = { gpa: s.gpa, size: s.size, hva: s.hva };
    const at = this.slots.findIndex((o) => o.gpa > s.gpa);
    const index = at < 0 ? this.slots.length : at;
    tx.do('kvm.memslot', () => this.slots.splice(index, 0, slot), () => this.slots.splice(index, 1));
  }

  /** The hva pieces behind [gpa, gpa + length); any byte outside every slot → EFAULT. */
  resolve(gpa: number, length: number): { hva: number; length: number }[] {
    if (!Number.isSafeInteger(gpa) || !Number.isSafeInteger(length) || gpa < 0 || length < 0) {
      throw new KernelError('EFAULT', `gpa range [${gpa}, +${length}) is invalid`);
    }
    const pieces: { hva: number; length: number }[] = [];
    let at = gpa;
    const end = gpa + length;
    while (at < end) {
      const slot = this.slots.find((o) => at >= o.gpa && at < o.gpa + o.size);
      if (!slot) throw new KernelError('EFAULT', `gpa 0x${at.toString(16)} is not in any memslot`);
      const n = Math.min(end, slot.gpa + slot.size) - at;
      pieces.push({ hva: slot.hva + (at - slot.gpa), length: n });
      at += n;
    }
    return pieces;
  }

  list(): Memslot[] {
    return this.slots.map((s) => ({ ...s }));
  }
}
