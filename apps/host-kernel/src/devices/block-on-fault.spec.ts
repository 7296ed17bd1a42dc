import { encodeDescriptor } from '@app/shared/dsa/descriptor';
import { CompletionStatus, DsaFlag } from '@app/shared/dsa/dsa.constants';
import { PRG_INDEX_LIMIT } from '../iommu/iommu.constants';
import { rig } from './accelerator.testing';
import { groupRequests, PrgIndexes } from './block-on-fault';
import { ENGINES_PER_DEVICE, PRI_MAX_ROUNDS } from './devices.constants';

const PAGE = 4096;
const copy = (dst: number, completion: number, length = 16, extra: { fence?: boolean } = {}): Buffer => {
  const b = encodeDescriptor({ op: 'memmove', src: 0x1000, dst, length, completion, blockOnFault: true });
  if (extra.fence) b.writeUIntLE(b.readUIntLE(4, 3) | DsaFlag.fence, 4, 3);
  return b;
};

describe('a block-on-fault descriptor on the device', () => {
  it('translates every page first: the missing ones go in one group, the rest of the queue runs on the other engines', () => {
    const r = rig({ wqDepth: 16 });
    r.holes.add(0x10000);
    r.holes.add(0x11000);
    r.dev.submit(5, copy(0x10000, 0x100, PAGE + 16));
    r.dev.submit(5, encodeDescriptor({ op: 'noop', completion: 0x120 }));
    expect(r.dev.step()).toBe(true);
    expect(r.groups).toEqual([{ ppasid: 5, grpid: 0, requests: [0x10000, 0x11000].map((address, i) => ({ address, perm: { read: false, write: true, exec: false, privileged: false }, last: i === 1 })), respond: expect.any(Function) }]);
    expect(r.record(0x100).status).toBe(0);
    expect(r.log.filter((l) => l.address >= 0x10000)).toEqual([]); // no byte moved: only translations
    expect(r.dev.step()).toBe(true); // the noop overtakes it
    expect(r.record(0x120).status).toBe(CompletionStatus.success);
    expect(r.dev.step()).toBe(false);
    expect(r.dev.stats).toMatchObject({ queued: 1, blocked: 1 });
    r.holes.clear();
    r.groups[0].respond('success');
    expect(r.dev.step()).toBe(true);
    expect(r.record(0x100)).toMatchObject({ status: CompletionStatus.success, bytesCompleted: PAGE + 16 });
  });

  it(`holds its slot and its engine: with ${ENGINES_PER_DEVICE} engines blocked the queue waits, and a full queue answers retry`, () => {
    const r = rig({ wqDepth: ENGINES_PER_DEVICE + 1 });
    for (let i = 0; i < ENGINES_PER_DEVICE; i++) {
      r.holes.add(0x20000 + i * PAGE);
      r.dev.submit(5, copy(0x20000 + i * PAGE, 0x100 + i * 32));
      r.dev.step();
    }
    expect(r.groups.map((g) => g.grpid)).toEqual([0, 1, 2, 3]);
    r.dev.submit(5, encodeDescriptor({ op: 'noop', completion: 0x200 }));
    expect(r.dev.step()).toBe(false); // no free engine
    expect(r.dev.submit(5, encodeDescriptor({ op: 'noop', completion: 0x220 }))).toBe('retry');
    r.groups[2].respond('invalid');
    expect(r.dev.step()).toBe(true);
    expect(r.record(0x140)).toMatchObject({ status: CompletionStatus.pageFault, faultAddress: 0x22000, bytesCompleted: 0 });
    expect(r.dev.step()).toBe(true); // its engine is free: the noop runs
    expect(r.record(0x200).status).toBe(CompletionStatus.success);
  });

  it('a fence waits for the blocked descriptor before it, and what follows the fence waits behind it', () => {
    const r = rig({ wqDepth: 8 });
    r.holes.add(0x30000);
    r.dev.submit(5, copy(0x30000, 0x100));
    r.dev.step();
    r.dev.submit(5, copy(0x31000, 0x120, 16, { fence: true }));
    r.dev.submit(5, encodeDescriptor({ op: 'noop', completion: 0x140 }));
    expect(r.dev.step()).toBe(false);
    r.holes.clear();
    r.groups[0].respond('success');
    for (let i = 0; i < 3; i++) r.dev.step();
    expect([r.record(0x100).status, r.record(0x120).status, r.record(0x140).status]).toEqual([1, 1, 1]);
  });

  it('a page no page request can fix ends it at once, as without the flag (the access faults and is reported)', () => {
    const r = rig();
    r.routes.set(5, { kind: 'iova', id: 5, destroyed: true, lookup: () => null });
    r.dev.submit(5, copy(0x10000, 0x100));
    r.dev.step();
    expect(r.groups).toEqual([]);
    expect(r.events).toContainEqual(expect.objectContaining({ kind: 'fault', reason: 'translation-blocked' }));
  });

  it('an FLR drops blocked work without a record; a late response finds nobody', () => {
    const r = rig();
    r.holes.add(0x10000);
    r.dev.submit(5, copy(0x10000, 0x100));
    r.dev.step();
    r.dev.reset();
    r.groups[0].respond('success');
    expect(r.dev.step()).toBe(false);
    expect(r.record(0x100).status).toBe(0);
    expect(r.dev.stats).toMatchObject({ queued: 0, blocked: 0, aborted: 1 });
  });

  it(`answered success ${PRI_MAX_ROUNDS} times and still missing: status 2 (drain of a blocked one: status 2 once answered invalid)`, () => {
    const r = rig();
    r.holes.add(0x10000);
    r.dev.submit(5, copy(0x10000, 0x100));
    for (let round = 0; round < PRI_MAX_ROUNDS; round++) {
      r.dev.step();
      r.groups[round].respond('success');
      r.dev.step();
      r.timers.fire();
    }
    expect(r.record(0x100)).toMatchObject({ status: CompletionStatus.pageFault, faultAddress: 0x10000 });
    r.dev.submit(5, copy(0x10000, 0x120));
    r.dev.step();
    r.groups.at(-1)?.respond('invalid');
    expect(r.dev.drainPasid(5)).toBe(0);
    expect(r.record(0x120).status).toBe(CompletionStatus.pageFault);
  });
});

describe('page request groups', () => {
  it('one request per page: a page both read and written asks once, for both; the last one closes the group', () => {
    expect(groupRequests([{ address: 0x1010, write: false, stage: 'source' }, { address: 0x2000, write: true, stage: 'destination' }, { address: 0x1800, write: true, stage: 'destination' }], false)).toEqual([
      { address: 0x1000, perm: { read: true, write: true, exec: false, privileged: false }, last: false },
      { address: 0x2000, perm: { read: false, write: true, exec: false, privileged: false }, last: true },
    ]);
  });

  it(`the group index is 9 bits: ${PRG_INDEX_LIMIT} outstanding at most, lowest free first`, () => {
    const ix = new PrgIndexes();
    const all = Array.from({ length: PRG_INDEX_LIMIT }, () => ix.alloc());
    expect(all).toEqual(Array.from({ length: PRG_INDEX_LIMIT }, (_, i) => i));
    expect(ix.alloc()).toBeNull();
    ix.free(7);
    expect(ix.alloc()).toBe(7);
    expect(ix.outstanding).toBe(PRG_INDEX_LIMIT);
  });
});
