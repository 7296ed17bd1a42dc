import { FakeVmm } from '../iommu/fake-vmm';
import { SvaDriver } from '../iommu/sva';
import { FrameAllocator } from '../mm/frame-allocator';
import { GuestMm } from '../mm/guest-mm';
import { AccelDriver } from './accel-driver';

const VRID = 0x08;

async function setup(opts: { maxPolls?: number; maxTries?: number; macrotaskYield?: boolean } = {}) {
  const vmm = new FakeVmm({ memoryMiB: 2, vcpus: 2, devices: [{ vrid: VRID, bdf: 'a' }] });
  const frames = new FrameAllocator(vmm.ram.length);
  const mm = new GuestMm(vmm, frames);
  const sva = new SvaDriver(vmm, frames, mm);
  await sva.boot([VRID]);
  let yields = 0;
  const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
  const accel = new AccelDriver(vmm, mm, sva, {
    ...opts,
    yield: async () => {
      yields++;
      if (opts.macrotaskYield) await tick();
    },
  });
  const p = await mm.createProcess('app');
  return { vmm, mm, sva, accel, pid: p.pid, yields: () => yields };
}

describe('AccelDriver', () => {
  it('memmove end to end: IA32_PASID = valid | vPASID, ENQCMD, the device walks the process table, completion polled', async () => {
    const { vmm, mm, sva, accel, pid } = await setup();
    const src = await mm.mmap(pid, 8192);
    const dst = await mm.mmap(pid, 8192);
    const data = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7) & 0xff));
    await mm.write(pid, src + 100, data);
    const vpasid = await sva.bind(pid, VRID);
    const r = await accel.submit(pid, VRID, { op: 'memmove', src: src + 100, dst: dst + 50, length: 5000 });
    expect(r).toEqual({ result: 'accepted', status: 1, bytes: 5000 });
    expect(await mm.read(pid, dst + 50, 5000)).toEqual(data);
    expect(vmm.msrs.get(0)).toBe(0x8000_0000 + vpasid);
    const completion = vmm.submitted[0].descriptor.completion;
    expect(completion % 32).toBe(0);
    expect(mm.translate(pid, completion, true)).toBeGreaterThan(0);
  });

  it('retries while the queue is full, yielding between tries', async () => {
    const { vmm, sva, accel, pid, yields } = await setup();
    await sva.bind(pid, VRID);
    vmm.enqcmdScript = ['retry', 'retry', 'retry'];
    expect(await accel.submit(pid, VRID, { op: 'noop' })).toEqual({ result: 'accepted', status: 1, bytes: 0 });
    expect(vmm.calls.filter((c) => c === 'enqcmd')).toHaveLength(4);
    expect(yields()).toBeGreaterThanOrEqual(3);
  });

  it('gives up with EAGAIN after the bounded number of tries', async () => {
    const { vmm, sva, accel, pid } = await setup({ maxTries: 64 });
    await sva.bind(pid, VRID);
    vmm.enqcmdScript = Array.from({ length: 100 }, () => 'retry' as const);
    await expect(accel.submit(pid, VRID, { op: 'noop' })).rejects.toMatchObject({ errno: 'EAGAIN' });
    expect(vmm.calls.filter((c) => c === 'enqcmd')).toHaveLength(64);
  });

  it('a process without a vPASID runs with IA32_PASID invalid and gets #GP', async () => {
    const { vmm, accel, pid } = await setup();
    expect(await accel.submit(pid, VRID, { op: 'noop' })).toEqual({ result: 'gp', reason: 'ia32-pasid-invalid' });
    expect(vmm.msrs.get(0)).toBe(0);
  });

  it('polls until the device writes the record; a record never written is EIO after the bound', async () => {
    const slow = await setup();
    await slow.sva.bind(slow.pid, VRID);
    slow.vmm.completeAfterReads = 3;
    expect(await slow.accel.submit(slow.pid, VRID, { op: 'noop' })).toMatchObject({ result: 'accepted', status: 1 });

    const hung = await setup({ maxPolls: 5 });
    await hung.sva.bind(hung.pid, VRID);
    hung.vmm.hang = true;
    const reads = hung.vmm.calls.filter((c) => c === 'readMemory').length;
    await expect(hung.accel.submit(hung.pid, VRID, { op: 'noop' })).rejects.toMatchObject({ errno: 'EIO' });
    expect(hung.vmm.calls.filter((c) => c === 'readMemory').length - reads).toBe(5);
  });

  it('reuses a completion slot once done, never a timed-out one', async () => {
    const { vmm, sva, accel, pid } = await setup({ maxPolls: 2 });
    await sva.bind(pid, VRID);
    await accel.submit(pid, VRID, { op: 'noop' });
    await accel.submit(pid, VRID, { op: 'noop' });
    vmm.hang = true;
    await expect(accel.submit(pid, VRID, { op: 'noop' })).rejects.toMatchObject({ errno: 'EIO' });
    vmm.hang = false;
    await accel.submit(pid, VRID, { op: 'noop' });
    const slots = vmm.submitted.map((s) => s.descriptor.completion);
    expect(slots[0]).toBe(slots[1]);
    expect(slots[2]).toBe(slots[0]);
    expect(slots[3]).toBe(slots[0] + 32);
  });

  it('refuses a bad descriptor with EINVAL before touching the VMM', async () => {
    const { vmm, accel, pid } = await setup();
    const calls = vmm.calls.length;
    await expect(accel.submit(pid, VRID, { op: 'xor' as 'noop' })).rejects.toMatchObject({ errno: 'EINVAL' });
    await expect(accel.submit(pid, VRID, { op: 'fill', dst: -1, length: 1 })).rejects.toMatchObject({ errno: 'EINVAL' });
    await expect(accel.submit(99, VRID, { op: 'noop' })).rejects.toMatchObject({ errno: 'ESRCH' });
    expect(vmm.calls.length).toBe(calls);
  });

  it('two submissions on one vCPU never interleave WRMSR and ENQCMD: each descriptor carries its own vPASID', async () => {
    const { vmm, mm, sva, accel, pid } = await setup();
    const other = (await mm.createProcess('other')).pid;
    const bufA = await mm.mmap(pid, 4096);
    const bufB = await mm.mmap(other, 4096);
    const vA = await sva.bind(pid, VRID);
    const vB = await sva.bind(other, VRID);
    // A slow WRMSR: the MSR is loaded at once, the call returns a macrotask later (a REST round trip),
    // which is exactly when the other submission would load its own value without the lock.
    const wrmsr = vmm.wrmsr.bind(vmm);
    vmm.wrmsr = async (vcpu, msr, value) => {
      await wrmsr(vcpu, msr, value);
      await new Promise((resolve) => setImmediate(resolve));
    };
    vmm.enqcmdScript = ['retry', 'retry'];
    const [ra, rb] = await Promise.all([
      accel.submit(pid, VRID, { op: 'fill', dst: bufA, length: 64, pattern: 0xaa }),
      accel.submit(other, VRID, { op: 'fill', dst: bufB, length: 64, pattern: 0xbb }),
    ]);
    expect([ra, rb]).toEqual([
      { result: 'accepted', status: 1, bytes: 64 },
      { result: 'accepted', status: 1, bytes: 64 },
    ]);
    const byPattern = new Map(vmm.submitted.map((s) => [s.descriptor.pattern, s.ia32Pasid & 0xfffff]));
    expect(byPattern.get(0xaa)).toBe(vA);
    expect(byPattern.get(0xbb)).toBe(vB);
    expect(await mm.read(pid, bufA, 64)).toEqual(Buffer.alloc(64, 0xaa));
    expect(await mm.read(other, bufB, 64)).toEqual(Buffer.alloc(64, 0xbb));
  });

  it('the vCPU lock is released while polling: a later submission completes while an earlier one still waits', async () => {
    const { vmm, mm, sva, accel, pid } = await setup({ maxPolls: 50, macrotaskYield: true });
    const other = (await mm.createProcess('other')).pid;
    await sva.bind(pid, VRID);
    await sva.bind(other, VRID);
    vmm.hang = true;
    const order: string[] = [];
    const slow = accel.submit(pid, VRID, { op: 'noop' }).catch((e: { errno: string }) => void order.push(`first ${e.errno}`));
    while (vmm.submitted.length === 0) await new Promise((resolve) => setImmediate(resolve));
    vmm.hang = false;
    await accel.submit(other, VRID, { op: 'noop' }).then((r) => void order.push(`second ${r.result}`));
    await slow;
    expect(order).toEqual(['second accepted', 'first EIO']);
  });

  it('after unbind the process keeps its vPASID: IA32_PASID = valid | old vPASID, and KVM answers #GP', async () => {
    const { vmm, sva, accel, pid } = await setup();
    const vpasid = await sva.bind(pid, VRID);
    await sva.unbind(pid, VRID);
    expect(await accel.submit(pid, VRID, { op: 'noop' })).toEqual({ result: 'gp', reason: 'vpasid-unmapped' });
    expect(vmm.msrs.get(0)).toBe(0x8000_0000 + vpasid);
    expect(vmm.submitted).toEqual([]);
  });
});
