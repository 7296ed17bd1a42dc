// The accelerator driver's submissions: ENQCMD with the process's vPASID, the retries of a full queue, #GP, and the
// completion record it polls (its slots and their bound). Ordering, unbind and faults: accel-driver-order.spec.ts.
import { CompletionStatus, decodeCompletion } from '@app/shared/dsa/descriptor';
import { IA32_PASID_VALID } from '@app/shared/x86/msr.constants';
import { DSA0, VmOnStack } from '../../../../stack/fixtures/vm-on-stack';
import { enqcmds, occupyQueue, setup } from '../../../../stack/fixtures/accel-driver-bed';
import { COMPLETION_RECORD_ALIGN, COMPLETION_RECORD_SIZE, COMPLETION_STATUS_NONE, ENQCMD_MAX_TRIES } from './drivers.constants';

afterEach(() => VmOnStack.closeAll());

describe('AccelDriver: submission and completion', () => {
  it('memmove end to end: IA32_PASID = valid | vPASID, ENQCMD, the device walks the process table, completion polled', async () => {
    const s = await setup();
    const { bed, mm, sva, pid, vrid } = s;
    const accel = s.driver();
    const src = await mm.mmap(pid, 8192);
    const dst = await mm.mmap(pid, 8192);
    const data = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7) & 0xff));
    await mm.write(pid, src + 100, data);
    const vpasid = await sva.bind(pid, vrid);
    const r = await accel.submit(pid, vrid, { op: 'memmove', src: src + 100, dst: dst + 50, length: 5000 });
    expect(r).toEqual({ result: 'accepted', status: CompletionStatus.success, bytes: 5000 });
    expect(await mm.read(pid, dst + 50, 5000)).toEqual(data);
    expect(bed.ia32Pasid(0)).toBe(IA32_PASID_VALID + vpasid);
    const [enq] = await enqcmds(bed);
    expect(enq).toMatchObject({ descriptor: { op: 'memmove', src: src + 100, dst: dst + 50, length: 5000 }, result: { result: 'accepted' } });
    const completion = enq.descriptor.completion;
    expect(completion % COMPLETION_RECORD_ALIGN).toBe(0);
    expect(mm.translate(pid, completion, true)).toBeGreaterThan(0);
    expect(decodeCompletion(await mm.read(pid, completion, COMPLETION_RECORD_SIZE))).toMatchObject({ status: CompletionStatus.success, bytesCompleted: 5000 });
  });

  it('retries while the queue is full, yielding between tries', async () => {
    const s = await setup({ wqDepth: 1 });
    const { bed, door, pid, vrid } = s;
    await s.sva.bind(pid, vrid);
    const { occupant, resume } = await occupyQueue(s);
    // The engine runs again only from inside the driver's third yield: the submission can get in only if the
    // driver yields between its tries.
    const RETRIES = 3;
    const retried = bed.accelerator(DSA0).stats.retried;
    const trace: string[] = [];
    let resumed = false;
    const accel = s.driver({
      port: {
        wrmsr: (vcpu, msr, value) => door.port.wrmsr(vcpu, msr, value),
        enqcmd: async (vcpu, v, d) => {
          const r = await door.port.enqcmd(vcpu, v, d);
          trace.push(`enqcmd ${r.result}`);
          return r;
        },
      },
      onYield: async () => {
        trace.push('yield');
        if (!resumed && bed.accelerator(DSA0).stats.retried - retried === RETRIES) {
          resumed = true;
          await resume();
        }
      },
    });
    expect(await accel.submit(pid, vrid, { op: 'noop' })).toEqual({ result: 'accepted', status: CompletionStatus.success, bytes: 0 });
    expect(trace.slice(0, 2 * RETRIES + 1)).toEqual(['enqcmd retry', 'yield', 'enqcmd retry', 'yield', 'enqcmd retry', 'yield', 'enqcmd accepted']);
    expect((await enqcmds(bed, 0)).map((e) => e.result.result)).toEqual(['retry', 'retry', 'retry', 'accepted']);
    expect(await occupant).toMatchObject({ result: 'accepted', status: CompletionStatus.success });
  });

  it('gives up with EAGAIN after the bounded number of tries', async () => {
    const s = await setup({ wqDepth: 1 });
    await s.sva.bind(s.pid, s.vrid);
    const { occupant, resume } = await occupyQueue(s);
    await expect(s.driver().submit(s.pid, s.vrid, { op: 'noop' })).rejects.toMatchObject({ errno: 'EAGAIN' });
    expect((await enqcmds(s.bed, 0)).map((e) => e.result.result)).toEqual(Array.from({ length: ENQCMD_MAX_TRIES }, () => 'retry'));
    await resume();
    expect(await occupant).toMatchObject({ result: 'accepted', status: CompletionStatus.success });
  });

  it('a process without a vPASID runs with IA32_PASID invalid and gets #GP', async () => {
    const s = await setup();
    const accel = s.driver();
    // Another process ran on vCPU 0 first: IA32_PASID holds its valid vPASID.
    const other = (await s.mm.createProcess('other')).pid;
    const vOther = await s.sva.bind(other, s.vrid);
    expect(await accel.submit(other, s.vrid, { op: 'noop' })).toMatchObject({ result: 'accepted', status: CompletionStatus.success });
    expect(s.bed.ia32Pasid(0)).toBe(IA32_PASID_VALID + vOther);
    const submitted = s.bed.accelerator(DSA0).stats.submitted;
    expect(await accel.submit(s.pid, s.vrid, { op: 'noop' })).toEqual({ result: 'gp', reason: 'ia32-pasid-invalid' });
    expect(s.bed.ia32Pasid(0)).toBe(0);
    expect(s.bed.accelerator(DSA0).stats.submitted).toBe(submitted);
  });

  it('polls until the device writes the record; a record never written is EIO after the bound', async () => {
    const s = await setup();
    const { bed, door, mm, pid, vrid } = s;
    await s.sva.bind(pid, vrid);
    const reads = (): number => door.calls.filter((c) => c.method === 'readMemory').length;

    // The engine is stalled for the first three polls, and runs from the third yield on.
    const STALLED_POLLS = 3;
    let polls = 0;
    const slow = s.driver({ onYield: async () => void (++polls === STALLED_POLLS && (await bed.setEngine(DSA0, true))) });
    await bed.setEngine(DSA0, false);
    let before = reads();
    expect(await slow.submit(pid, vrid, { op: 'noop' })).toMatchObject({ result: 'accepted', status: CompletionStatus.success });
    expect(reads() - before).toBe(STALLED_POLLS + 1);

    const hung = s.driver({ maxPolls: 5 });
    await bed.setEngine(DSA0, false);
    before = reads();
    const pending = await hung.submit(pid, vrid, { op: 'noop' });
    expect(reads() - before).toBe(5);
    const last = (await enqcmds(bed)).at(-1);
    expect(last?.result).toEqual({ result: 'accepted' });
    // Not an error: the program is told where the record is that the device has not written yet.
    expect(pending).toEqual({ result: 'pending', completion: last?.descriptor.completion, polls: 5 });
    expect(decodeCompletion(await mm.read(pid, last?.descriptor.completion as number, COMPLETION_RECORD_SIZE)).status).toBe(COMPLETION_STATUS_NONE);
  });

  it('reuses a completion slot once done, never a timed-out one', async () => {
    const s = await setup();
    const { bed, mm, pid, vrid } = s;
    await s.sva.bind(pid, vrid);
    const accel = s.driver({ maxPolls: 2 });
    await accel.submit(pid, vrid, { op: 'noop' });
    await accel.submit(pid, vrid, { op: 'noop' });
    await bed.setEngine(DSA0, false);
    expect(await accel.submit(pid, vrid, { op: 'noop' })).toMatchObject({ result: 'pending' });
    await bed.setEngine(DSA0, true);
    await accel.submit(pid, vrid, { op: 'noop' });
    const slots = (await enqcmds(bed)).map((e) => e.descriptor.completion);
    expect(slots).toHaveLength(4);
    expect(slots[1]).toBe(slots[0]);
    expect(slots[2]).toBe(slots[0]);
    expect(slots[3]).toBe(slots[0] + COMPLETION_RECORD_ALIGN);
    // Why: the timed-out descriptor ran once the engine came back, and wrote its record into that slot.
    expect(decodeCompletion(await mm.read(pid, slots[2], COMPLETION_RECORD_SIZE)).status).toBe(CompletionStatus.success);
  });

  it('refuses a bad descriptor with EINVAL before touching the VMM', async () => {
    const s = await setup();
    const accel = s.driver();
    const calls = s.door.calls.length;
    await expect(accel.submit(s.pid, s.vrid, { op: 'xor' as 'noop' })).rejects.toMatchObject({ errno: 'EINVAL' });
    await expect(accel.submit(s.pid, s.vrid, { op: 'fill', dst: -1, length: 1 })).rejects.toMatchObject({ errno: 'EINVAL' });
    await expect(accel.submit(99, s.vrid, { op: 'noop' })).rejects.toMatchObject({ errno: 'ESRCH' });
    expect(s.door.calls.length).toBe(calls);
  });
});
