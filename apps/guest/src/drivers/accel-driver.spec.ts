import type { Descriptor, EnqcmdResult } from '@app/shared/contract/host-kernel';
import { CompletionStatus, decodeCompletion } from '@app/shared/dsa/descriptor';
import { FAULT_INFO_WRITE } from '@app/shared/dsa/dsa.constants';
import { type FailWhen, failWhen } from '../../../../stack/fail-when';
import { STACK_DEVICES } from '../../../../stack/in-process-stack';
import { IA32_PASID_VALID } from '@app/shared/x86/msr.constants';
import { handlePageRequest } from '../iommu/page-fault';
import { SvaDriver } from '../iommu/sva';
import { FrameAllocator } from '../mm/frame-allocator';
import { GuestMm } from '../mm/guest-mm';
import { PAGE_SIZE } from '../mm/mm.constants';
import { DSA0, DSA1, tick, VmOnStack } from '../../../../stack/fixtures/vm-on-stack';
import type { VirtualPageRequest, VmmPort } from '../vmm.port';
import { AccelDriver, type AccelOptions } from './accel-driver';
import { COMPLETION_RECORD_ALIGN, COMPLETION_RECORD_SIZE, COMPLETION_STATUS_NONE, ENQCMD_MAX_TRIES } from './drivers.constants';

type CpuPort = Pick<VmmPort, 'wrmsr' | 'enqcmd'>;

interface DriverOptions extends Omit<AccelOptions, 'yield'> {
  /** Runs at each of the driver's yields, before it lets the engine tick. */
  onYield?: () => Promise<void> | void;
  port?: CpuPort;
}

interface Setup {
  bed: VmOnStack;
  /** The guest's door as the drivers see it: every call logged. */
  door: FailWhen<VmmPort>;
  mm: GuestMm;
  sva: SvaDriver;
  vrid: number;
  pid: number;
  /** An accelerator driver of this OS; each yield lets macrotasks (the device's engine) run. */
  driver(opts?: DriverOptions): AccelDriver;
}

/** A 2 MiB VM with 2 vCPUs and DSA0 (and more devices if asked), one process. wqDepth: of every host device. */
async function setup(o: { devices?: string[]; wqDepth?: number } = {}): Promise<Setup> {
  const hostDevices = o.wqDepth === undefined ? undefined : STACK_DEVICES.map((d) => ({ ...d, wqDepth: o.wqDepth as number }));
  const bed = await VmOnStack.start({ memoryMiB: 2, vcpus: 2, devices: o.devices ?? [DSA0] }, { devices: hostDevices });
  const door = failWhen<VmmPort>(bed.port);
  const frames = new FrameAllocator(bed.ramBytes);
  const mm = new GuestMm(door.port, frames);
  const sva = new SvaDriver(door.port, frames, mm);
  await sva.boot(bed.machine.devices.map((d) => d.vrid));
  // The guest's page request handler, as the booted OS runs it: the device's page requests for untouched pages.
  const lifeline = door.port.holdLifeline({
    onEvent: (e) => {
      if (e.event !== 'page-request') return;
      const pr = e.data as VirtualPageRequest;
      void handlePageRequest(sva, mm, pr).then(({ code }) => door.port.pageResponse({ vrid: pr.vrid, vpasid: pr.vpasid, grpid: pr.grpid, code }));
    },
  });
  await lifeline.opened;
  const p = await mm.createProcess('app');
  const driver = (opts: DriverOptions = {}): AccelDriver => {
    const { onYield, port, ...rest } = opts;
    return new AccelDriver(port ?? door.port, mm, sva, {
      ...rest,
      yield: async () => {
        await onYield?.();
        await tick();
      },
    });
  };
  return { bed, door, mm, sva, vrid: bed.vrid(DSA0), pid: p.pid, driver };
}

/** The ENQCMDs the VMM ran on vCPU n, oldest first, from its journal. */
async function enqcmds(bed: VmOnStack, n = 0): Promise<Array<{ descriptor: Descriptor; result: EnqcmdResult }>> {
  const rows = await bed.vmmRows('vcpu.enqcmd');
  return rows
    .filter((r) => r.object === `vcpu:${bed.vm.id}/${n}`)
    .map((r) => ({ descriptor: (r.args as { descriptor: Descriptor }).descriptor, result: r.result as EnqcmdResult }));
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000 && !cond(); i++) await tick();
  if (!cond()) throw new Error(`never happened: ${what}`);
}

/** A fill pattern is 8 bytes, little-endian: byte i of the destination is byte i % 8 of the pattern (DSA). */
function filled(pattern: number, length: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(pattern));
  return Buffer.from(Array.from({ length }, (_, i) => b[i % 8]));
}

/**
 * The work queue of DSA0 holds one descriptor, and it is taken: another process's noop, submitted on vCPU 1,
 * which the stalled engine keeps queued. `resume` runs the engine again; the occupant polls only after it.
 */
async function occupyQueue(s: Setup): Promise<{ occupant: Promise<unknown>; resume: () => Promise<void> }> {
  const other = (await s.mm.createProcess('occupant')).pid;
  await s.sva.bind(other, s.vrid);
  await s.bed.setEngine(DSA0, false);
  let open!: () => void;
  const resumed = new Promise<void>((resolve) => (open = resolve));
  const occupant = s.driver({ onYield: () => resumed }).submit(other, s.vrid, { op: 'noop' }, 1);
  await until(() => s.bed.accelerator(DSA0).full, 'the work queue is full');
  return {
    occupant,
    resume: async () => {
      await s.bed.setEngine(DSA0, true);
      open();
    },
  };
}

afterEach(() => VmOnStack.closeAll());

describe('AccelDriver', () => {
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
    await expect(hung.submit(pid, vrid, { op: 'noop' })).rejects.toMatchObject({ errno: 'EIO' });
    expect(reads() - before).toBe(5);
    const last = (await enqcmds(bed)).at(-1);
    expect(last?.result).toEqual({ result: 'accepted' });
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
    await expect(accel.submit(pid, vrid, { op: 'noop' })).rejects.toMatchObject({ errno: 'EIO' });
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
    const slow = accel.submit(pid, vrid, { op: 'noop' }).catch((e: { errno: string }) => void order.push(`first ${e.errno}`));
    await until(() => bed.accelerator(DSA0).stats.queued > 0, 'the first descriptor is queued');
    await accel.submit(other, vrid1, { op: 'noop' }).then((r) => void order.push(`second ${r.result}`));
    await slow;
    expect(order).toEqual(['second accepted', 'first EIO']);
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
