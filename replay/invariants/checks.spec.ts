// The checks' own edges, each met by a campaign before it was settled: the contract's 507/501 are not server
// errors; a PASID freed earlier in a step may be handed out again in it; a refused VM creation may leave an
// exited host process (history, holding nothing) but nothing else.
import type { KernelState } from '../../apps/host-kernel/src/kernel-state';
import { ERRNO } from '@app/shared/errno';
import { IovaPageTable } from '../../apps/host-kernel/src/ioasid/io-pagetable';
import type { JournalEvent } from '@app/shared/journal/journal';
import { newFold } from './journals';
import { noteRamWrittenBehindOs } from './vmm';
import { checkNamed } from './registry';
import type { CheckInput, Snapshot, StepCall } from './types';

const call = (status: number, errno: string): StepCall => ({ app: 'host-kernel', method: 'POST', path: '/v1/processes/101/mmap', body: null, principal: 'pid:101', response: { status, body: { errno } } });
const input = (o: Partial<CheckInput>): CheckInput => ({ now: null as unknown as Snapshot, before: null, step: null, rows: new Map(), fold: newFold(), stack: null, ...o });
const row = (seq: number, operation: string, o: Partial<JournalEvent>): JournalEvent => ({ app: 'host-kernel', seq, operation, actor: 'pid:101', object: null, args: {}, result: null, errno: null, traceId: 't', spanId: 's', parentSpanId: null, caller: null, logical: seq, wallMs: seq, durationMs: 0, ...o });
/** A snapshot with only what these checks read: the host's ioasids and processes. */
const snap = (ioasids: Array<{ id: number; state: string }>, processes: Array<{ pid: number; state: string }> = []): Snapshot => ({ host: { ioasids, processes }, vmm: null, guests: new Map() }) as unknown as Snapshot;
/** snap's, with one VM and the parts of the host a device's work touches. */
const vmSnap = (ioasids: Array<{ id: number; state: string }>, vm: KernelState['vms'][number], g: { free?: number; vpasid?: number; mappings?: number; others?: number; resident?: number } = {}): Snapshot =>
  ({
    host: { ioasids, processes: [{ pid: 100, state: 'running', ia32Pasid: 0, residentPages: g.resident ?? 4 }], vms: [vm], devices: [], faultQueues: [], pageRequests: [], allocatedFrames: 4 },
    vmm: null,
    guests: new Map([
      [
        1,
        {
          frames: { total: 512, free: g.free ?? 100 },
          processes: [
            { pid: 1, name: 'app', cr3: 0x1000, mappings: g.mappings ?? 3, vpasid: g.vpasid ?? 1, vrids: [1] },
            { pid: 2, name: 'other', cr3: 0x2000, mappings: g.others ?? 2, vpasid: null, vrids: [] },
          ],
        },
      ],
    ]),
  }) as unknown as Snapshot;

describe('invariant checks at their edges', () => {
  it('no-5xx: an errno the contract answers 507 or 501 is no server error; 500 EIO, or 507 with another errno, is', () => {
    const noFiveXX = checkNamed('no-5xx');
    const run = (c: StepCall): string[] => noFiveXX.run(input({ step: { label: 'x', calls: [c], event: false } }));
    expect(run(call(ERRNO.ENOMEM.status, 'ENOMEM'))).toEqual([]);
    expect(run(call(ERRNO.EOPNOTSUPP.status, 'EOPNOTSUPP'))).toEqual([]);
    expect(run(call(ERRNO.EIO.status, 'EIO'))).toHaveLength(1);
    expect(run(call(ERRNO.ENOSPC.status, 'EINVAL'))).toHaveLength(1);
  });

  it('parked-never-handed-out: a PASID freed earlier in the same step may be handed out again; one still held may not', () => {
    const parked = checkNamed('parked-never-handed-out');
    const before = snap([{ id: 2, state: 'allocated' }]);
    const alloc = row(2, 'ioasid.alloc', { result: { ioasid: 2 } });
    const freed = row(1, 'event.ioasid-freed', { args: { pid: 101, ppasid: 2 } });
    expect(parked.run(input({ before, rows: new Map([['host-kernel', [freed, alloc]]]) }))).toEqual([]);
    expect(parked.run(input({ before, rows: new Map([['host-kernel', [alloc]]]) }))).toHaveLength(1);
  });

  it('refused-call-changes-nothing: an exited process left behind is history; a running one is a change', () => {
    const refused = checkNamed('refused-call-changes-nothing');
    const step = { label: 'create-vm', calls: [{ ...call(409, 'EBUSY'), app: 'vmm' }], event: false };
    const before = snap([], [{ pid: 101, state: 'running' }]);
    expect(refused.run(input({ step, before, now: snap([], [{ pid: 101, state: 'running' }, { pid: 102, state: 'exited' }]) }))).toEqual([]);
    expect(refused.run(input({ step, before, now: snap([], [{ pid: 101, state: 'running' }, { pid: 102, state: 'running' }]) }))).toHaveLength(1);
  });

  it('refused-call-changes-nothing: a refused create-vm may leave a device it opened and closed reset; not one left open, nor another', () => {
    const refused = checkNamed('refused-call-changes-nothing');
    // The fuzzer's seed 7: 6a:01.0 stalled by hw.engine, opened by the VMM's create-vm, whose 6b:01.0 was busy; the
    // close reset 6a:01.0 (its engine back to running).
    const step = { label: 'create-vm', calls: [{ ...call(409, 'EBUSY'), app: 'vmm', path: '/v1/vms' }], event: false };
    type Device = KernelState['devices'][number];
    const device = (bdf: string, o: Partial<Device> = {}): Device => ({ bdf, openedBy: null, queued: 0, engineRunning: false, ...o });
    const withDevices = (devices: Device[]): Snapshot => {
      const s = snap([], [{ pid: 101, state: 'running' }]);
      return { ...s, host: { ...s.host, devices } };
    };
    const busy = device('0000:6b:01.0', { openedBy: { pid: 101, fd: 5 }, engineRunning: true });
    const before = withDevices([device('0000:6a:01.0'), busy]);
    const open = (bdf: string, errno: string | null): JournalEvent => row(0, 'vfio.open', { object: `device:${bdf}`, errno });
    // The step's own rows: the VMM's create-vm (its input) and the host rows of its trace.
    const create = { ...row(9, 'vm.create', { errno: 'EBUSY', input: true }), app: 'vmm' };
    const steps = (host: JournalEvent[]): Map<string, JournalEvent[]> => new Map([['vmm', [create]], ['host-kernel', host]]);
    const rows = steps([open('0000:6a:01.0', null), open('0000:6b:01.0', 'EBUSY')]);
    const reset = withDevices([device('0000:6a:01.0', { engineRunning: true }), busy]);
    expect(refused.run(input({ step, before, now: reset, rows }))).toEqual([]);
    // Without the open that succeeded, the same change is the refusal's.
    expect(refused.run(input({ step, before, now: reset, rows: steps([open('0000:6b:01.0', 'EBUSY')]) }))).toEqual([
      expect.stringContaining('$.host.devices[0].engineRunning'),
    ]);
    // The device it opened is still open, or the busy one's engine changed: both are violations.
    const leftOpen = withDevices([device('0000:6a:01.0', { openedBy: { pid: 102, fd: 3 }, engineRunning: true }), busy]);
    expect(refused.run(input({ step, before, now: leftOpen, rows }))).toEqual([expect.stringContaining('$.host.devices[0].openedBy')]);
    const other = withDevices([device('0000:6a:01.0', { engineRunning: true }), { ...busy, engineRunning: false }]);
    expect(refused.run(input({ step, before, now: other, rows }))).toEqual([expect.stringContaining('$.host.devices[1].engineRunning')]);
  });

  it('refused-call-changes-nothing: a guest submit answered EFAULT after the device accepted its ENQCMD ran; EAGAIN after ZF=1 loaded IA32_PASID; one refused before did neither', () => {
    const refused = checkNamed('refused-call-changes-nothing');
    // The fuzzer's seed 5: the record's write faulted (not bound on that device), and IA32_PASID had been loaded for the ENQCMD.
    const step = { label: 'submit', calls: [{ ...call(400, 'EFAULT'), app: 'guest', vm: 1, path: '/v1/processes/1/submit' }], event: false };
    const vm = (ia32Pasid: number) => ({ pid: 100, fd: 3, memslots: [], vcpus: 1, ia32Pasids: [ia32Pasid], translation: true, pasids: [] });
    const before = vmSnap([], vm(0));
    // IA32_PASID loaded, and the guest faulted a page in for the device's page request.
    const now = vmSnap([], vm(0x8000_0001), { free: 99 });
    // The step's own rows: the guest's submit (its input, answered EFAULT) and the host rows of its trace.
    const submit = { ...row(7, 'accel.submit', { errno: 'EFAULT', input: true }), app: 'guest' };
    const steps = (host: JournalEvent[]): Map<string, JournalEvent[]> => new Map([['guest', [submit]], ['host-kernel', host]]);
    const enqcmd = (o: Partial<JournalEvent>): Map<string, JournalEvent[]> => steps([row(1, 'kvm.vcpu_wrmsr', {}), row(2, 'kvm.vcpu_enqcmd', o)]);
    const accepted = enqcmd({ result: { result: 'accepted' } });
    expect(refused.run(input({ step, before, now, rows: accepted }))).toEqual([]);
    // What a device's work cannot do is still a violation in that step: an ioasid that appeared, a vPASID that changed.
    expect(refused.run(input({ step, before, now: vmSnap([{ id: 9, state: 'allocated' }], vm(0x8000_0001)), rows: accepted }))).toEqual([
      expect.stringContaining('$.host.ioasids'),
    ]);
    expect(refused.run(input({ step, before, now: vmSnap([], vm(0x8000_0001), { free: 99, vpasid: 2 }), rows: accepted }))).toEqual([expect.stringContaining('vpasid')]);
    // A queue that stayed full (seed 13: 409 EAGAIN after every try answered ZF=1): the instruction executed with the
    // task's IA32_PASID loaded, and the submit had mapped a page for its completion slot (the page and three tables).
    const loaded = vmSnap([], vm(0x8000_0001));
    const full = enqcmd({ result: { result: 'retry' } });
    expect(refused.run(input({ step, before, now: loaded, rows: full }))).toEqual([]);
    expect(refused.run(input({ step, before, now: vmSnap([], vm(0x8000_0001), { free: 96, mappings: 4 }), rows: full }))).toEqual([]);
    // Nothing else: another process's mappings, or a host page brought in (no device ran anything).
    expect(refused.run(input({ step, before, now: vmSnap([], vm(0x8000_0001), { free: 96, others: 3 }), rows: full }))).toEqual([expect.stringContaining('$.guests[0][1].processes[1].mappings')]);
    expect(refused.run(input({ step, before, now: vmSnap([], vm(0x8000_0001), { resident: 5 }), rows: full }))).toEqual([expect.stringContaining('residentPages')]);
    // A step that is no submit of that guest's gets no slot: its pages are compared.
    const elsewhere = { ...step, calls: [{ ...step.calls[0], vm: 2 }] };
    expect(refused.run(input({ step: elsewhere, before, now: vmSnap([], vm(0x8000_0001), { free: 96, mappings: 4 }), rows: full }))).toEqual([expect.stringContaining('$.guests[0][1].frames.free')]);
    // An ENQCMD refused with an errno, or none at all, never executed: even IA32_PASID is a change.
    expect(refused.run(input({ step, before, now: loaded, rows: enqcmd({ errno: 'EBADF' }) }))).toEqual([expect.stringContaining('ia32Pasids')]);
    expect(refused.run(input({ step, before, now: loaded, rows: steps([row(1, 'kvm.vcpu_wrmsr', {})]) }))).toEqual([expect.stringContaining('ia32Pasids')]);
  });

  it('guest-binds-are-mirrored: not for a guest whose RAM a device or the memory door wrote behind its OS, until it boots again', () => {
    const mirrored = checkNamed('guest-binds-are-mirrored');
    // vm 99: its OS bound process 2 with vPASID 3 on vrid 8; the vIOMMU mirrors nothing (its directory was overwritten).
    const state = (bootedAtMs: number, routes: Array<{ bdf: string; ppasid: number | null; ioasid: number; blocked: boolean }>): Snapshot =>
      ({
        host: { ioasids: [], processes: [], routes },
        vmm: { vms: [{ id: 99, state: 'running', host: { pid: 100, vmFd: 3, ioasidFd: 4, gpaIoasid: 1 }, shadow: [] }] },
        guests: new Map([[99, { bootedAtMs, processes: [{ pid: 2, vpasid: 3, vrids: [8] }] }]]),
      }) as unknown as Snapshot;
    const rid = { bdf: '0000:6a:01.0', ppasid: null, ioasid: 1, blocked: false };
    const other = { bdf: '0000:6b:01.0', ppasid: null, ioasid: 5, blocked: false };
    const before = state(10, [rid, other]);
    const dma = (bdf: string, write: boolean, result: unknown): Map<string, JournalEvent[]> =>
      new Map([['host-kernel', [row(1, 'hw.dma', { actor: 'admin', args: { bdf, address: 0, length: 8192, write }, result })]]]);
    const violations = (rows: Map<string, JournalEvent[]>, now = before): string[] => {
      const fold = newFold();
      noteRamWrittenBehindOs(fold, rows, before, now);
      return mirrored.run(input({ now, before, rows, fold }));
    };
    const unmirrored = ['guest of vm 99: process 2 is bound with vPASID 3 on vrids 8, the vIOMMU mirrors it on nothing'];
    expect(violations(new Map())).toEqual(unmirrored);
    // A write that reached the VM's GPA space through its device's RID route, or the VMM's memory door by the VM.
    expect(violations(dma('0000:6a:01.0', true, { ok: true }))).toEqual([]);
    expect(violations(new Map([['vmm', [{ ...row(1, 'guest.write_memory', { actor: 'vm:99', args: { gpa: 4096, length: 8 } }), app: 'vmm' }]]]))).toEqual([]);
    // A read, a write that faulted, and a write through another VM's device wrote nothing of vm 99's.
    expect(violations(dma('0000:6a:01.0', false, { ok: true }))).toEqual(unmirrored);
    expect(violations(dma('0000:6a:01.0', true, { fault: { reason: 'no-route' } }))).toEqual(unmirrored);
    expect(violations(dma('0000:6b:01.0', true, { ok: true }))).toEqual(unmirrored);
    // The note holds for the boot it was made in: the guest booted again rebuilt its directory.
    const fold = newFold();
    noteRamWrittenBehindOs(fold, dma('0000:6a:01.0', true, { ok: true }), before, before);
    expect(mirrored.run(input({ now: state(20, [rid, other]), fold }))).toEqual(unmirrored);
  });

  it('frames-and-pins-accounted: the pins the frames carry against the charges of running processes, for each list it is given', () => {
    const accounted = checkNamed('frames-and-pins-accounted');
    const host = (pins: KernelState['pins'], charged: number): Snapshot =>
      ({ host: { processes: [{ pid: 101, state: 'running', residentPages: 2, usage: { pinnedPages: charged } }], allocatedFrames: 2, pins }, vmm: null, guests: new Map() }) as unknown as Snapshot;
    const run = (pins: KernelState['pins'], charged: number): string[] => accounted.run(input({ now: host(pins, charged) }));
    // A frozen list (the in-process kernel's own) is summed once; another frozen list is summed on its own.
    const frozen = Object.freeze([Object.freeze([10, 2] as const), Object.freeze([11, 1] as const)]);
    expect(run(frozen, 3)).toEqual([]);
    expect(run(frozen, 2)).toEqual(['frames carry 3 pins, running processes are charged 2']);
    expect(run(Object.freeze([Object.freeze([10, 2] as const)]), 3)).toEqual(['frames carry 2 pins, running processes are charged 3']);
    // A list that is not frozen (a JSON answer) may change in place: it is summed each time.
    const open: Array<[number, number]> = [[10, 2]];
    expect(run(open, 2)).toEqual([]);
    open.push([11, 4]);
    expect(run(open, 2)).toEqual(['frames carry 6 pins, running processes are charged 2']);
  });

  it('exited-process-holds-nothing: a process the host reaped (no longer listed) holds nothing either', () => {
    const holds = checkNamed('exited-process-holds-nothing');
    const host = (owner: number, listed: number[]): Snapshot =>
      ({
        host: {
          processes: listed.map((pid) => ({ pid, comm: 'p', state: 'running', fds: [{ fd: 3, kind: 'ioasid' }], residentPages: 0, usage: { pasids: 1, pinnedPages: 0, fds: 1 } })),
          ioasids: [{ id: 7, state: 'allocated', owner: { pid: owner, fd: 3 } }],
          routes: [],
          devices: [{ bdf: '0000:6a:01.0', openedBy: { pid: owner, fd: 4 }, queued: 0, engineRunning: true }],
          vms: [],
          faultQueues: [],
          pageRequests: [],
        },
        vmm: null,
        guests: new Map(),
      }) as unknown as Snapshot;
    expect(holds.run(input({ now: host(101, [101]) }))).toEqual([]);
    expect(holds.run(input({ now: host(105, [101]) }))).toEqual(['process 105 is not listed (reaped) but still holds ioasids 7; open devices 0000:6a:01.0']);
  });

  it("frames-owned-once and dma-stays-in-owner: a frame resident in two processes, and an iova table mapping a frame its owner does not have", () => {
    // The parts of a live stack the two checks read: each process's resident frames, and the ioasids' iova tables.
    const resident: Record<number, number[]> = { 101: [10, 11, 12], 102: [20, 21], 103: [30] };
    const table = (frames: Array<{ iova: number; pfn: number }>): IovaPageTable =>
      Object.assign(Object.create(IovaPageTable.prototype) as IovaPageTable, {
        destroyed: false,
        forEachMappedFrame: (visit: (iova: number, pfn: number) => boolean) => frames.every(({ iova, pfn }) => visit(iova, pfn)),
      });
    const ioasids = [
      { id: 1, owner: { pid: 101 }, pgtbl: table([{ iova: 0x1000, pfn: 11 }]) },
      { id: 2, owner: { pid: 102 }, pgtbl: table([{ iova: 0x2000, pfn: 20 }]) },
    ];
    const stack = { host: { kernel: { procs: { get: (pid: number) => ({ mm: { frames: () => resident[pid].values() } }) }, ioasids: { all: () => ioasids } } } } as unknown as CheckInput['stack'];
    const now = snap([], [101, 102, 103].map((pid) => ({ pid, state: 'running' })));
    const ownedOnce = checkNamed('frames-owned-once');
    const inOwner = checkNamed('dma-stays-in-owner');
    expect(ownedOnce.run(input({ now, stack }))).toEqual([]);
    expect(inOwner.run(input({ now, stack }))).toEqual([]);
    // Frame 11 is also resident in 103, and 102's table maps 12 (101's) and 40 (nobody's). 103's table maps 11,
    // which it holds as the second of two processes: no violation of dma-stays-in-owner.
    resident[103].push(11);
    ioasids[1].pgtbl = table([{ iova: 0x2000, pfn: 20 }, { iova: 0x3000, pfn: 12 }, { iova: 0x4000, pfn: 40 }]);
    ioasids.push({ id: 3, owner: { pid: 103 }, pgtbl: table([{ iova: 0x5000, pfn: 11 }]) });
    const later = snap([], [101, 102, 103].map((pid) => ({ pid, state: 'running' })));
    expect(ownedOnce.run(input({ now: later, stack }))).toEqual(['frame 11 is resident in processes 101, 103']);
    expect(inOwner.run(input({ now: later, stack }))).toEqual([
      'ioasid 2 of process 102 maps iova 0x3000 to frame 12, resident in process 101',
      'ioasid 2 of process 102 maps iova 0x4000 to frame 40, which no process has',
    ]);
  });
});
