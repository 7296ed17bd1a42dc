import { encodeDescriptor } from '@app/shared/dsa/descriptor';
import { CompletionStatus } from '@app/shared/dsa/dsa.constants';
import { Iotlb } from '../iommu/iotlb';
import { Accelerator, type AcceleratorEvent, type DmaPort } from './accelerator';
import { FakePhys, fakeDma, rig } from './accelerator.testing';

const pattern = (n: number, seed = 1) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff));

describe('Accelerator', () => {
  it('memmove copies bytes across pages and writes a success record', () => {
    const r = rig();
    const src = pattern(10000);
    r.phys.write(0x1100, src);
    expect(r.dev.submit(5, encodeDescriptor({ op: 'memmove', src: 0x1100, dst: 0x8080, length: 10000, completion: 0x100 }))).toBe('accepted');
    expect(r.record(0x100).status).toBe(0);
    expect(r.dev.step()).toBe(true);
    expect(r.phys.read(0x8080, 10000)).toEqual(src);
    expect(r.record(0x100)).toMatchObject({ status: CompletionStatus.success, bytesCompleted: 10000 });
    expect(r.events.at(-1)).toMatchObject({ kind: 'completion', ppasid: 5, op: 'memmove', status: 1 });
  });

  it('memmove handles overlap with dst above src (copies backwards)', () => {
    const r = rig();
    const src = pattern(9000);
    r.phys.write(0x2000, src);
    r.dev.submit(5, encodeDescriptor({ op: 'memmove', src: 0x2000, dst: 0x2000 + 100, length: 9000, completion: 0x100 }));
    r.dev.step();
    expect(r.phys.read(0x2000 + 100, 9000)).toEqual(src);
  });

  it('fill repeats the 8-byte pattern little-endian', () => {
    const r = rig();
    r.dev.submit(5, encodeDescriptor({ op: 'fill', dst: 0x3ffc, length: 20, pattern: 0x0807060504030201n, completion: 0x120 }));
    r.dev.step();
    expect([...r.phys.read(0x3ffc, 20)]).toEqual(Array.from({ length: 20 }, (_, i) => (i % 8) + 1));
    expect(r.phys.read(0x3ffc + 20, 4).every((x) => x === 0)).toBe(true);
    expect(r.record(0x120)).toMatchObject({ status: 1, bytesCompleted: 20 });
  });

  it('compare reports equality, and a mismatch with the offset of the first difference', () => {
    const r = rig();
    r.phys.write(0x5000, pattern(6000));
    r.phys.write(0xa000, pattern(6000));
    r.dev.submit(5, encodeDescriptor({ op: 'compare', src: 0x5000, dst: 0xa000, length: 6000, completion: 0x100 }));
    r.dev.step();
    expect(r.record(0x100)).toMatchObject({ status: CompletionStatus.success, result: 0 });
    r.phys.write(0xa000 + 4500, Buffer.from([0xee]));
    r.dev.submit(5, encodeDescriptor({ op: 'compare', src: 0x5000, dst: 0xa000, length: 6000, completion: 0x140 }));
    r.dev.step();
    expect(r.record(0x140)).toMatchObject({ status: CompletionStatus.compareMismatch, result: 1, bytesCompleted: 4500 });
  });

  it('noop writes only its completion record', () => {
    const r = rig();
    r.dev.submit(null, encodeDescriptor({ op: 'noop', completion: 0x1e0 }));
    r.dev.step();
    expect(r.record(0x1e0)).toMatchObject({ status: 1, bytesCompleted: 0 });
    expect(r.log).toEqual([{ ppasid: null, address: 0x1e0, length: 32, write: true }]);
  });

  it('answers retry when the queue is full, and accepts again after step()', () => {
    const r = rig({ wqDepth: 2 });
    const d = encodeDescriptor({ op: 'noop', completion: 0x100 });
    expect(r.dev.submit(5, d)).toBe('accepted');
    expect(r.dev.submit(5, d)).toBe('accepted');
    expect(r.dev.submit(5, d)).toBe('retry');
    expect(r.dev.stats).toMatchObject({ queued: 2, retried: 1, submitted: 2, wqDepth: 2, inFlight: 0 });
    r.dev.step();
    expect(r.dev.submit(5, d)).toBe('accepted');
    expect(r.dev.stats.queued).toBe(2);
  });

  it('a fault mid-copy stops, writes status 2 with the fault address, and moves no byte of the faulting page', () => {
    const r = rig();
    const src = pattern(3 * 4096);
    r.phys.write(0x10000, src);
    r.holes.add(0x21000); // second destination page
    r.dev.submit(5, encodeDescriptor({ op: 'memmove', src: 0x10000, dst: 0x20000, length: 3 * 4096, completion: 0x100 }));
    r.dev.step();
    expect(r.record(0x100)).toMatchObject({ status: CompletionStatus.pageFault, faultAddress: 0x21000, bytesCompleted: 4096, faultInfo: 1 });
    expect(r.phys.read(0x20000, 4096)).toEqual(src.subarray(0, 4096));
    expect(r.phys.read(0x21000, 2 * 4096).every((x) => x === 0)).toBe(true);
    expect(r.events).toContainEqual(expect.objectContaining({ kind: 'fault', ppasid: 5, address: 0x21000, write: true, stage: 'destination' }));
    expect(r.dev.stats.faulted).toBe(1);
  });

  it('a read fault on the source reports a read (fault info 0)', () => {
    const r = rig();
    r.holes.add(0x10000);
    r.dev.submit(5, encodeDescriptor({ op: 'memmove', src: 0x10010, dst: 0x20000, length: 64, completion: 0x100 }));
    r.dev.step();
    expect(r.record(0x100)).toMatchObject({ status: 2, faultAddress: 0x10010, bytesCompleted: 0, faultInfo: 0 });
  });

  it('a fault on the completion record is reported as an event and the record dropped', () => {
    const r = rig();
    r.holes.add(0x3000);
    r.dev.submit(5, encodeDescriptor({ op: 'noop', completion: 0x3020 }));
    r.dev.step();
    expect(r.events).toContainEqual(expect.objectContaining({ kind: 'fault', stage: 'completion-record', address: 0x3020 }));
  });

  it('invalid descriptors complete with a DSA error status', () => {
    const r = rig();
    const d = encodeDescriptor({ op: 'noop', completion: 0x100 });
    d[7] = 0x55;
    r.dev.submit(5, d);
    r.dev.step();
    expect(r.record(0x100).status).toBe(CompletionStatus.badOpcode);
    const unaligned = encodeDescriptor({ op: 'noop', completion: 0x108 });
    r.dev.submit(5, unaligned);
    r.dev.step();
    expect(r.events.at(-1)).toMatchObject({ kind: 'error', status: CompletionStatus.completionAlign });
    expect(r.dev.stats.invalid).toBe(2);
  });

  it('drainPasid aborts queued work of that PASID with status 4 and leaves nothing queued for it', () => {
    const r = rig();
    r.phys.write(0x10000, pattern(64));
    r.dev.submit(5, encodeDescriptor({ op: 'memmove', src: 0x10000, dst: 0x20000, length: 64, completion: 0x100 }));
    r.dev.submit(null, encodeDescriptor({ op: 'noop', completion: 0x120 }));
    r.dev.submit(5, encodeDescriptor({ op: 'fill', dst: 0x20000, length: 64, pattern: 1, completion: 0x140 }));
    expect(r.dev.drainPasid(5)).toBe(2);
    expect(r.dev.queuedFor(5)).toBe(0);
    expect(r.record(0x100).status).toBe(CompletionStatus.aborted);
    expect(r.record(0x140).status).toBe(CompletionStatus.aborted);
    // The route goes away; nothing for PASID 5 may touch memory afterwards.
    r.routes.delete(5);
    r.log.length = 0;
    while (r.dev.step());
    expect(r.log.every((a) => a.ppasid === null)).toBe(true);
    expect(r.phys.read(0x20000, 64).every((x) => x === 0)).toBe(true);
    expect(r.record(0x120).status).toBe(1);
    expect(r.dev.stats).toMatchObject({ aborted: 2, queued: 0 });
  });

  it('runs automatically through the scheduler in bounded batches, and pauses', () => {
    const ticks: Array<() => void> = [];
    const events: AcceleratorEvent[] = [];
    const phys = new FakePhys();
    const dma: DmaPort = {
      ...fakeDma(phys, new Iotlb(), () => ({ kind: 'iova', id: 1, destroyed: false, lookup: (a) => ({ hpa: a, read: true, write: true }) })),
      probe: () => ({ ok: true }),
      pageRequest: () => undefined,
    };
    const dev = new Accelerator({ dma, wqDepth: 8, batchPerTick: 2, scheduler: (run) => ticks.push(run), onEvent: (e) => events.push(e) });
    for (let i = 0; i < 5; i++) dev.submit(9, encodeDescriptor({ op: 'noop', completion: 0x100 + i * 32 }));
    expect(ticks.length).toBe(1);
    ticks.shift()!();
    expect(events.length).toBe(2);
    dev.pause();
    ticks.shift()!();
    expect(events.length).toBe(2);
    expect(ticks.length).toBe(0);
    dev.resume();
    while (ticks.length) ticks.shift()!();
    expect(events.length).toBe(5);
    expect(dev.stats).toMatchObject({ queued: 0, completed: 5 });
  });

  it('reset() drops every queued descriptor without a record, DMA or event, and returns to the default engine state', () => {
    const r = rig({ paused: true });
    r.dev.resume();
    r.dev.pause();
    r.dev.submit(5, encodeDescriptor({ op: 'fill', dst: 0x20000, length: 64, pattern: 1, completion: 0x100 }));
    r.dev.submit(null, encodeDescriptor({ op: 'noop', completion: 0x120 }));
    r.dev.submit(7, encodeDescriptor({ op: 'noop', completion: 0x140 }));
    r.dev.resume(); // not the configured default (paused); no scheduler tick has run yet
    const saved = r.dev.reset();
    expect(r.dev.stats).toMatchObject({ queued: 0, aborted: 3, completed: 0 });
    expect(r.dev.paused).toBe(true);
    expect(r.log).toEqual([]);
    expect(r.events).toEqual([]);
    for (const at of [0x100, 0x120, 0x140]) expect(r.record(at).status).toBe(0);
    expect(r.dev.step()).toBe(false);
    // A rolled-back transaction puts everything back, in order.
    r.dev.pause();
    r.dev.unreset(saved);
    expect(r.dev.stats).toMatchObject({ queued: 3, aborted: 0 });
    expect([r.dev.queuedFor(5), r.dev.queuedFor(null), r.dev.queuedFor(7)]).toEqual([1, 1, 1]);
    expect(r.dev.paused).toBe(false);
    r.dev.pause();
    r.dev.step();
    expect(r.record(0x100).status).toBe(CompletionStatus.success);
  });

  it('abortAll() is the reporting variant: every record is written with status aborted', () => {
    const r = rig();
    r.dev.submit(5, encodeDescriptor({ op: 'noop', completion: 0x100 }));
    r.dev.submit(null, encodeDescriptor({ op: 'noop', completion: 0x120 }));
    expect(r.dev.abortAll()).toBe(2);
    for (const at of [0x100, 0x120]) expect(r.record(at).status).toBe(CompletionStatus.aborted);
  });

  it('every DMA of a descriptor carries its priv bit as PR (a RID request never does)', () => {
    const r = rig();
    r.dev.submit(5, encodeDescriptor({ op: 'fill', dst: 0x20000, length: 8, pattern: 1, completion: 0x100, privileged: true }));
    r.dev.submit(5, encodeDescriptor({ op: 'fill', dst: 0x20000, length: 8, pattern: 1, completion: 0x100 }));
    r.dev.submit(null, encodeDescriptor({ op: 'noop', completion: 0x120, privileged: true }));
    r.dev.step();
    expect(r.log.map((a) => a.privileged ?? false)).toEqual([true, true]);
    r.log.length = 0;
    r.dev.step();
    r.dev.step();
    expect(r.log.map((a) => [a.ppasid, a.privileged ?? false])).toEqual([
      [5, false],
      [5, false],
      [null, false],
    ]);
  });

  it('rejects a bad PASID or descriptor size with EINVAL and queues nothing', () => {
    const r = rig();
    const d = encodeDescriptor({ op: 'noop', completion: 0x100 });
    for (const fn of [() => r.dev.submit(0, d), () => r.dev.submit(1 << 20, d), () => r.dev.submit(5, Buffer.alloc(63))]) {
      expect(fn).toThrow(expect.objectContaining({ errno: 'EINVAL' }));
    }
    expect(r.dev.stats).toMatchObject({ queued: 0, submitted: 0 });
  });
});
