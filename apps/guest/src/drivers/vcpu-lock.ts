// One mutex per vCPU. IA32_PASID is per-vCPU state: between loading it (WRMSR) and the ENQCMD that uses
// it, no other task may run on that vCPU, as the kernel guarantees by restoring the task's PASID state on
// each context switch (Linux arch/x86 fpu xstate, XFEATURE_PASID). Here WRMSR and ENQCMD are separate
// awaited calls, so a submission holds the vCPU's lock across them.

export class VcpuLocks {
  /** vCPU → promise settled when the last queued holder releases. */
  private readonly tails = new Map<number, Promise<void>>();

  /** Waits for the vCPU, returns its release function (idempotent). FIFO among waiters. */
  async acquire(vcpu: number): Promise<() => void> {
    const previous = this.tails.get(vcpu) ?? Promise.resolve();
    let open!: () => void;
    const mine = new Promise<void>((resolve) => (open = resolve));
    const tail = previous.then(() => mine);
    this.tails.set(vcpu, tail);
    await previous;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      open();
      if (this.tails.get(vcpu) === tail) this.tails.delete(vcpu);
    };
  }
}
