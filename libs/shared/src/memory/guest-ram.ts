// Guest RAM as a mapping (DESIGN §3: guest-physical [0, memoryMiB MiB)): the bytes of the VM's memory file, read
// and written with plain copies, as a vCPU's loads and stores or QEMU's address_space_rw on its own mapping are.
// No access makes a call; an access outside RAM is EFAULT and moves nothing.
import { KernelError } from '../errno';

/** The guest drivers' memory interface (the same shape the VMM's REST memory calls have). */
export interface GuestMemory {
  readMemory(gpa: number, length: number): Promise<Buffer>;
  writeMemory(gpa: number, data: Buffer): Promise<void>;
}

export class GuestRam implements GuestMemory {
  constructor(readonly bytes: Buffer) {}

  get size(): number {
    return this.bytes.length;
  }

  /** A copy of [gpa, gpa + length). */
  read(gpa: number, length: number): Buffer {
    this.check(gpa, length);
    return Buffer.from(this.bytes.subarray(gpa, gpa + length));
  }

  write(gpa: number, data: Buffer): void {
    this.check(gpa, data.length);
    data.copy(this.bytes, gpa);
  }

  readMemory(gpa: number, length: number): Promise<Buffer> {
    try {
      return Promise.resolve(this.read(gpa, length));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  writeMemory(gpa: number, data: Buffer): Promise<void> {
    try {
      this.write(gpa, data);
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private check(gpa: number, length: number): void {
    if (!Number.isSafeInteger(gpa) || !Number.isSafeInteger(length) || gpa < 0 || length < 0 || gpa + length > this.bytes.length) {
      throw new KernelError('EFAULT', `gpa range [0x${Number(gpa).toString(16)}, +${length}) is outside guest RAM`);
    }
  }
}
