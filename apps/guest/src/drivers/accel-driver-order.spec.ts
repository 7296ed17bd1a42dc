// The accelerator driver's ordering on a vCPU (WRMSR and ENQCMD of two submissions never interleave, the vCPU is
// free while a submission polls), a process after unbind, and the page faults its records report.
import type { Descriptor } from '@app/shared/contract/host-kernel';
import { CompletionStatus, decodeCompletion } from '@app/shared/dsa/descriptor';
import { FAULT_INFO_WRITE } from '@app/shared/dsa/dsa.constants';
import { IA32_PASID_VALID } from '@app/shared/x86/msr.constants';
import { DSA0, DSA1, tick, VmOnStack } from '../../../../stack/fixtures/vm-on-stack';
import { PAGE_SIZE } from '../mm/mm.constants';
import { enqcmds, filled, setup, until } from '../../../../stack/fixtures/accel-driver-bed';
import { COMPLETION_RECORD_SIZE } from './drivers.constants';

afterEach(() => VmOnStack.closeAll());

describe('AccelDriver: ordering on a vCPU, unbind and page faults', () => {
  it('two submissions on one vCPU never interleave WRMSR and ENQCMD: each descriptor carries its own vPASID', async () => {
    const s = await setup();
    const { bed, door, mm, sva, pid, vrid } = s;
    const other = (await mm.createProcess('other')).pid;
    const bufA = await mm.mmap(pid, 4096);
    const bufB = await mm.mmap(other, 4096);
    const vA = await sva.bind(pid, vrid);
    const vB = await sva.bind(other, vrid);
    // A slow WRMSR: the MSR is loaded at once, the call returns a macrotask later (a REST round trip),
    // which is exactly when the other submission would load its own value without the lock.
    const accel = s.driver({
      port: {
        wrmsr: async (vcpu, msr, value) => {
          await door.port.wrmsr(vcpu, msr, value);
          await tick();
        },
        enqcmd: (vcpu, v, d) => door.port.enqcmd(vcpu, v, d),
      },
    });
    const PATTERN_A = 0xaa;
    const PATTERN_B = 0xbb;
    const [ra, rb] = await Promise.all([
      accel.submit(pid, vrid, { op: 'fill', dst: bufA, length: 64, pattern: PATTERN_A }),
      accel.submit(other, vrid, { op: 'fill', dst: bufB, length: 64, pattern: PATTERN_B }),
    ]);
    expect([ra, rb]).toEqual([
      { result: 'accepted', status: CompletionStatus.success, bytes: 64 },
      { result: 'accepted', status: CompletionStatus.success, bytes: 64 },
    ]);
    // What KVM saw, in order on vCPU 0: each ENQCMD ran with the IA32_PASID of the WRMSR just before it.
    const vcpu0 = `vcpu:${bed.vm.id}/0`;
    const carried = new Map<number, number | null>();
    let msr: number | null = null;
    for (const r of await bed.vmmRows('vcpu.wrmsr', 'vcpu.enqcmd')) {
      if (r.object !== vcpu0) continue;
      if (r.operation === 'vcpu.wrmsr') msr = (r.args as { value: number }).value;
      else carried.set((r.args as { descriptor: Descriptor }).descriptor.pattern as number, msr);
    }
    expect(carried).toEqual(
      new Map([
        [PATTERN_A, IA32_PASID_VALID + vA],
        [PATTERN_B, IA32_PASID_VALID + vB],
      ]),
    );
    // Both processes have a buffer at the same GVA: each fill landed in its own process's memory.
    expect(bufA).toBe(bufB);
    expect(await mm.read(pid, bufA, 64)).toEqual(filled(PATTERN_A, 64));
    expect(await mm.read(other, bufB, 64)).toEqual(filled(PATTERN_B, 64));
  });

  it('the vCPU lock is released while polling: a later submission completes while an earlier one still waits', async () => {
    // Two devices, one of them stalled: the first submission waits on DSA0, the second goes to DSA1 on the same vCPU.
    const s = await setup({ devices: [DSA0, DSA1] });
    const { bed, mm, sva, pid, vrid } = s;
    const vrid1 = bed.vrid(DSA1);
    const other = (await mm.createProcess('other')).pid;
    await sva.bind(pid, vrid);
    await sva.bind(other, vrid1);
    await bed.setEngine(DSA0, false);
    const accel = s.driver({ maxPolls: 50 });
    const order: string[] = [];
    const slow = accel.submit(pid, vrid, { op: 'noop' }).then((r) => void order.push(`first ${r.result}`));
    await until(() => bed.accelerator(DSA0).stats.queued > 0, 'the first descriptor is queued');
    await accel.submit(other, vrid1, { op: 'noop' }).then((r) => void order.push(`second ${r.result}`));
    await slow;
    expect(order).toEqual(['second accepted', 'first pending']);
  });

  it('after unbind the process keeps its vPASID: IA32_PASID = valid | old vPASID, and KVM answers #GP', async () => {
    const s = await setup();
    const accel = s.driver();
    const vpasid = await s.sva.bind(s.pid, s.vrid);
    await s.sva.unbind(s.pid, s.vrid);
    expect(s.bed.kvmPasids()).toEqual([]);
    expect(await accel.submit(s.pid, s.vrid, { op: 'noop' })).toEqual({ result: 'gp', reason: 'vpasid-unmapped' });
    expect(s.bed.ia32Pasid(0)).toBe(IA32_PASID_VALID + vpasid);
    expect((await enqcmds(s.bed)).map((e) => e.result)).toEqual([{ result: 'gp', reason: 'vpasid-unmapped' }]);
    expect(s.bed.accelerator(DSA0).stats.submitted).toBe(0);
  });

  it('a destination the device cannot translate: the record says page fault (status 2) at that address, nothing is written, and the driver returns it', async () => {
    const s = await setup();
    const { bed, mm, sva, pid, vrid } = s;
    const accel = s.driver();
    const src = await mm.mmap(pid, PAGE_SIZE);
    const dst = await mm.mmap(pid, PAGE_SIZE);
    await mm.write(pid, src, Buffer.from(Array.from({ length: 64 }, (_, i) => i + 1)));
    const vpasid = await sva.bind(pid, vrid);
    // A first copy maps the completion page and sets the accessed/dirty bits of every page it uses.
    expect(await accel.submit(pid, vrid, { op: 'memmove', src, dst, length: 64 })).toEqual({ result: 'accepted', status: CompletionStatus.success, bytes: 64 });
    // The next GVA this process's mmap would hand out has never been mapped: the IOMMU's walk finds no PTE.
    const unmapped = mm.process(pid).nextGva;
    expect(() => mm.translate(pid, unmapped, true)).toThrow(expect.objectContaining({ errno: 'EFAULT' }));
    const before = await bed.ram();
    const r = await accel.submit(pid, vrid, { op: 'memmove', src, dst: unmapped, length: 64 });
    expect(r).toEqual({ result: 'accepted', status: CompletionStatus.pageFault, bytes: 0, faultAddress: unmapped });
    // The only bytes of guest RAM that changed are the completion record's.
    const recordGpa = mm.translate(pid, (await enqcmds(bed)).at(-1)?.descriptor.completion as number, true);
    const after = await bed.ram();
    const changed: number[] = [];
    for (let i = 0; i < after.length; i++) if (after[i] !== before[i]) changed.push(i);
    expect(changed.length).toBeGreaterThan(0);
    expect(changed.filter((i) => i < recordGpa || i >= recordGpa + COMPLETION_RECORD_SIZE)).toEqual([]);
    expect(decodeCompletion(after.subarray(recordGpa, recordGpa + COMPLETION_RECORD_SIZE))).toMatchObject({
      status: CompletionStatus.pageFault,
      faultInfo: FAULT_INFO_WRITE,
      bytesCompleted: 0,
      faultAddress: unmapped,
    });
    // Block on fault: the device asked for the page (a page request, not a DMA fault), the guest's handler found
    // no mapping there and answered invalid; no fault record was logged on the way.
    // (The first copy's destination page was untouched too: that request was answered success.)
    expect((await bed.vmmRows('viommu.page_response')).map((r) => [r.args, r.errno])).toEqual([
      [{ vrid, vpasid, grpid: 0, code: 'success' }, null],
      [{ vrid, vpasid, grpid: 0, code: 'invalid' }, null],
    ]);
    await bed.stack.settle();
    expect(bed.viommu.faults()).toEqual([]);
  });

  it('a page fault at GVA 0 (a null destination) still reports its address', async () => {
    const s = await setup();
    await s.sva.bind(s.pid, s.vrid);
    expect(await s.driver().submit(s.pid, s.vrid, { op: 'fill', dst: 0, length: 8, pattern: 1 })).toEqual({
      result: 'accepted',
      status: CompletionStatus.pageFault,
      bytes: 0,
      faultAddress: 0,
    });
  });
});
