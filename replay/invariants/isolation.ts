// DESIGN §11, isolation: no DMA or CPU access of VM A, process P or PASID X reads or writes a frame A/P/X does
// not own, and a guest never learns a host id. In process the frames themselves are checked (no frame in two
// address spaces, every frame an iova table maps belongs to the ioasid's owner); on both transports every read
// the step made is checked for another tenant's canary (canary.ts), and every answer the VMM gives a VM's own
// token for words and fields that name host objects.
import type { KernelState } from '../../apps/host-kernel/src/kernel-state';
import { IovaPageTable } from '../../apps/host-kernel/src/ioasid/io-pagetable';
import { canaryOwners, type Owner, ownerName, sameOwner } from './canary';
import { check, type Check, type Snapshot, type StepCall } from './types';

const GROUP = 'isolation';
/** Words that name host objects (as apps/vmm/src/vm/guest-terms.spec.ts): no answer to a VM's token may use one. */
const HOST_WORDS = /\b(pid|fds?|hva|hpa|ppasid|ioasids?|process \d+)\b|https?:\/\/|127\.0\.0\.1/i;
const HOST_FIELDS = new Set(['pid', 'fd', 'hostPid', 'hva', 'ppasid', 'ioasid', 'token', 'hostDetail']);

/** Who owns host process `pid`: the VM it runs (a VMM-made process), or the process itself. */
function ownerOfPid(s: Snapshot, pid: number): Owner {
  const vm = s.vmm?.vms.find((v) => v.host?.pid === pid);
  return vm ? { kind: 'vm', vm: vm.id } : { kind: 'host', pid };
}

/** The tenant a read is made for, and the bytes it returned; null for a call that reads no memory. */
function readOf(call: StepCall, before: Snapshot | null): { reader: Owner; data: Buffer } | null {
  const res = call.response;
  const data = (res?.body as { data?: unknown } | null | undefined)?.data;
  if (!res || res.status >= 300 || typeof data !== 'string') return null;
  const bytes = Buffer.from(data, 'base64');
  const path = call.path.split('?')[0];
  const pid = /^pid:(\d+)$/.exec(call.principal)?.[1];
  if (call.app === 'host-kernel' && pid && /^\/v1\/(processes\/\d+|kvm\/\d+)\/memory$/.test(path)) return { reader: { kind: 'host', pid: Number(pid) }, data: bytes };
  const vm = /^vm:(\d+)$/.exec(call.principal)?.[1];
  if (call.app === 'vmm' && vm && /^\/v1\/vms\/\d+\/memory$/.test(path)) return { reader: { kind: 'vm', vm: Number(vm) }, data: bytes };
  if (call.app === 'guest' && call.vm !== undefined && /\/memory$/.test(path)) return { reader: { kind: 'vm', vm: call.vm }, data: bytes };
  const dma = /^\/v1\/hw\/devices\/([^/]+)\/dma$/.exec(path);
  if (call.app === 'host-kernel' && dma && before) {
    // A device's DMA reads through the route it is tagged with: the page table of that ioasid's owner.
    const bdf = decodeURIComponent(dma[1]);
    const pasid = (call.body as { pasid?: number } | null)?.pasid;
    const route = before.host.routes.find((r) => r.bdf === bdf && r.ppasid === (pasid === undefined || pasid === 0 ? null : pasid));
    const owner = route && before.host.ioasids.find((i) => i.id === route.ioasid)?.owner.pid;
    return owner === undefined ? null : { reader: ownerOfPid(before, owner), data: bytes };
  }
  return null;
}

/** Strings and keys of an answer that name host objects. */
function hostTerms(v: unknown, path = ''): string[] {
  if (typeof v === 'string') return HOST_WORDS.test(v) ? [`${path || 'body'}: "${v}"`] : [];
  if (Array.isArray(v)) return v.flatMap((x, i) => hostTerms(x, `${path}[${i}]`));
  if (v !== null && typeof v === 'object') {
    return Object.entries(v).flatMap(([k, x]) => [...(HOST_FIELDS.has(k) ? [`${path}.${k}`] : []), ...hostTerms(x, `${path}.${k}`)]);
  }
  return [];
}

/**
 * Who holds the resident frames: the first process each is resident in (`first[pfn]`, valid where `stamp[pfn]` is
 * this observation's `gen`), and every frame resident in more. The two arrays, one slot per frame, are reused from
 * one observation to the next: filling a Map with every resident frame was a tenth of an in-process fuzz step.
 */
interface FrameOwners {
  gen: number;
  first: Int32Array;
  stamp: Int32Array;
  shared: Map<number, number[]>;
}

/** Each observation's frame owners, built once for the two checks that read them (keyed on the observation). */
const framesSeen = new WeakMap<KernelState, FrameOwners>();
let arrays: { first: Int32Array; stamp: Int32Array; gen: number } | null = null;

function framesOf(s: KernelState, stack: NonNullable<Parameters<Check['run']>[0]['stack']>): FrameOwners {
  const seen = framesSeen.get(s);
  // The arrays are shared: an observation's owners hold only until the next observation's are built.
  if (seen && arrays && seen.first === arrays.first && seen.gen === arrays.gen) return seen;
  arrays ??= { first: new Int32Array(4096), stamp: new Int32Array(4096), gen: 0 };
  const gen = ++arrays.gen;
  const shared = new Map<number, number[]>();
  for (const p of s.processes) {
    for (const pfn of stack.host.kernel.procs.get(p.pid).mm.frames()) {
      if (pfn >= arrays.stamp.length) grow(arrays, pfn);
      const { first, stamp } = arrays;
      if (stamp[pfn] !== gen) {
        stamp[pfn] = gen;
        first[pfn] = p.pid;
      } else shared.set(pfn, [...(shared.get(pfn) ?? [first[pfn]]), p.pid]);
    }
  }
  const owners = { gen, first: arrays.first, stamp: arrays.stamp, shared };
  framesSeen.set(s, owners);
  return owners;
}

/** Room for frame `pfn` (twice as many slots, or up to it): the stamps carry over, so the observation being built keeps its own. */
function grow(a: { first: Int32Array; stamp: Int32Array }, pfn: number): void {
  const n = Math.max(pfn + 1, 2 * a.stamp.length);
  const first = new Int32Array(n);
  const stamp = new Int32Array(n);
  first.set(a.first);
  stamp.set(a.stamp);
  a.first = first;
  a.stamp = stamp;
}

/** The processes frame `pfn` is resident in. */
function residentIn(owners: FrameOwners, pfn: number): number[] {
  if (pfn >= owners.stamp.length || owners.stamp[pfn] !== owners.gen) return [];
  return owners.shared.get(pfn) ?? [owners.first[pfn]];
}

/** Frame `pfn` is resident in process `pid` (residentIn(…).includes(pid), without an array per frame). */
function residentInPid(owners: FrameOwners, pfn: number, pid: number): boolean {
  if (pfn >= owners.stamp.length || owners.stamp[pfn] !== owners.gen) return false;
  if (owners.first[pfn] === pid) return true;
  return owners.shared.get(pfn)?.includes(pid) === true;
}

export const ISOLATION_CHECKS: Check[] = [
  check({
    name: 'frames-owned-once',
    group: GROUP,
    rule: 'no frame belongs to two address spaces',
    inProcessOnly: true,
    run: ({ now, stack }) => {
      if (!stack) return [];
      return [...framesOf(now.host, stack).shared].map(([pfn, pids]) => `frame ${pfn} is resident in processes ${pids.join(', ')}`);
    },
  }),
  check({
    name: 'dma-stays-in-owner',
    group: GROUP,
    rule: "an iova table maps only frames of its ioasid's owner (no DMA of PASID X reaches a frame X's owner does not own)",
    inProcessOnly: true,
    run: ({ now, stack }) => {
      if (!stack) return [];
      const owners = framesOf(now.host, stack);
      const out: string[] = [];
      for (const i of stack.host.kernel.ioasids.all()) {
        if (!(i.pgtbl instanceof IovaPageTable) || i.pgtbl.destroyed) continue;
        const pid = i.owner.pid;
        i.pgtbl.forEachMappedFrame((iova, pfn) => {
          if (residentInPid(owners, pfn, pid)) return true;
          const who = residentIn(owners, pfn);
          out.push(`ioasid ${i.id} of process ${pid} maps iova 0x${iova.toString(16)} to frame ${pfn}, ${who.length ? `resident in process ${who.join(', ')}` : 'which no process has'}`);
          return out.length <= 8;
        });
        if (out.length > 8) return out;
      }
      return out;
    },
  }),
  check({
    name: 'reads-see-own-data',
    group: GROUP,
    rule: "no CPU or DMA read of one tenant returns another tenant's bytes",
    run: ({ step, before }) => {
      const out: string[] = [];
      for (const call of step?.calls ?? []) {
        const r = readOf(call, before);
        if (!r) continue;
        for (const o of canaryOwners(r.data)) if (!sameOwner(o, r.reader)) out.push(`${call.method} ${call.path} for ${ownerName(r.reader)} returned bytes written by ${ownerName(o)}`);
      }
      return out;
    },
  }),
  check({
    name: 'guest-never-learns-host-ids',
    group: GROUP,
    rule: "a guest never learns a host id: the VMM's answers to a VM's token name no host pid, fd, hva, PASID or URL",
    run: ({ step }) =>
      (step?.calls ?? [])
        .filter((c) => c.app === 'vmm' && /^vm:\d+$/.test(c.principal) && c.response)
        .flatMap((c) => hostTerms(c.response?.body).map((t) => `${c.method} ${c.path} (${c.principal}) answered ${c.response?.status} naming a host object: ${t}`)),
  }),
];
