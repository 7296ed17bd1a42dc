// DESIGN §11, nothing leaks: a process that is gone (killed, deleted, its lifeline dropped) holds no fd, route, KVM
// entry, pinned frame, fault queue or page request; every frame and pin the host counts belongs to a running
// process; and once no process runs at all, the host holds nothing of anyone.
import type { KernelState } from '../../apps/host-kernel/src/kernel-state';
import { check, type Check } from './types';

const GROUP = 'leaks';

/** What the host still holds of process `pid`, as sentences. */
function heldBy(s: KernelState, pid: number): string[] {
  const out: string[] = [];
  const ioasids = s.ioasids.filter((i) => i.owner.pid === pid).map((i) => i.id);
  if (ioasids.length) out.push(`ioasids ${ioasids.join(', ')}`);
  const routes = s.routes.filter((r) => ioasids.includes(r.ioasid)).map((r) => `${r.bdf}/${r.ppasid ?? 'rid'}`);
  if (routes.length) out.push(`routes ${routes.join(', ')}`);
  const devices = s.devices.filter((d) => d.openedBy?.pid === pid).map((d) => d.bdf);
  if (devices.length) out.push(`open devices ${devices.join(', ')}`);
  const vms = s.vms.filter((v) => v.pid === pid);
  if (vms.length) out.push(`KVM VMs (fds ${vms.map((v) => v.fd).join(', ')}) with ${vms.reduce((n, v) => n + v.pasids.length, 0)} vPASID entries`);
  const queues = s.faultQueues.filter((q) => q.pid === pid);
  if (queues.length) out.push(`fault queues ${queues.map((q) => `${q.fd}/${q.id}`).join(', ')}`);
  const prs = s.pageRequests.filter((g) => g.owner === pid || ioasids.includes(g.ppasid));
  if (prs.length) out.push(`pending page request groups ${prs.map((g) => g.seq).join(', ')}`);
  return out;
}

/**
 * The pins every frame carries, summed once per list: in process an unchanged list is one frozen array from one
 * observation to the next (physical-memory.ts pinnedFrames), and summing its ~4,096 pairs at every step was a
 * twentieth of a fuzz step. A list that is not frozen (a JSON answer over REST) is summed each time.
 */
const pinTotals = new WeakMap<KernelState['pins'], number>();
function pinTotal(pins: KernelState['pins']): number {
  const known = pinTotals.get(pins);
  if (known !== undefined) return known;
  let n = 0;
  for (const [, count] of pins) n += count;
  if (Object.isFrozen(pins)) pinTotals.set(pins, n);
  return n;
}

/** Pids that own something on the host but are not in its process list, ascending. */
function ownersNotListed(s: KernelState): number[] {
  const listed = new Set(s.processes.map((p) => p.pid));
  const owners: Array<number | null> = [
    ...s.ioasids.map((i) => i.owner.pid),
    ...s.devices.flatMap((d) => (d.openedBy ? [d.openedBy.pid] : [])),
    ...s.vms.map((v) => v.pid),
    ...s.faultQueues.map((q) => q.pid),
    ...s.pageRequests.map((g) => g.owner),
  ];
  const unlisted = owners.filter((pid): pid is number => typeof pid === 'number' && !listed.has(pid));
  return [...new Set(unlisted)].sort((a, b) => a - b);
}

export const LEAK_CHECKS: Check[] = [
  check({
    name: 'exited-process-holds-nothing',
    group: GROUP,
    rule: 'process death closes every fd: an exited process holds no fd, memory, pin, PASID, route, KVM entry, fault queue or page request',
    run: ({ now }) => {
      const out: string[] = [];
      for (const p of now.host.processes) {
        if (p.state === 'running') continue;
        const own: string[] = [];
        if (p.fds.length) own.push(`fds ${p.fds.map((f) => `${f.fd}(${f.kind})`).join(', ')}`);
        if (p.residentPages) own.push(`${p.residentPages} resident pages`);
        if (p.usage.pinnedPages) own.push(`${p.usage.pinnedPages} pinned pages`);
        if (p.usage.pasids) own.push(`a charge of ${p.usage.pasids} PASIDs`);
        own.push(...heldBy(now.host, p.pid));
        if (own.length) out.push(`process ${p.pid} (${p.comm}) is ${p.state} but still holds ${own.join('; ')}`);
      }
      // A process the host no longer lists (exited and reaped, process-table.ts EXITED_KEPT) holds nothing either.
      for (const pid of ownersNotListed(now.host)) out.push(`process ${pid} is not listed (reaped) but still holds ${heldBy(now.host, pid).join('; ')}`);
      return out;
    },
  }),
  check({
    name: 'frames-and-pins-accounted',
    group: GROUP,
    rule: 'every allocated frame is a resident page of a running process, and every pin is charged to one',
    run: ({ now }) => {
      const s = now.host;
      const running = s.processes.filter((p) => p.state === 'running');
      const resident = running.reduce((n, p) => n + p.residentPages, 0);
      const pinned = running.reduce((n, p) => n + p.usage.pinnedPages, 0);
      const pins = pinTotal(s.pins);
      const out: string[] = [];
      if (s.allocatedFrames !== resident) out.push(`${s.allocatedFrames} frames are allocated, ${resident} are resident pages of running processes`);
      if (pins !== pinned) out.push(`frames carry ${pins} pins, running processes are charged ${pinned}`);
      return out;
    },
  }),
  check({
    name: 'no-tenant-no-state',
    group: GROUP,
    rule: 'after every tenant is gone the host holds no fd, route, KVM entry, pinned frame or page request of anyone',
    run: ({ now }) => {
      const s = now.host;
      if (s.processes.some((p) => p.state === 'running')) return [];
      const left: string[] = [];
      if (s.ioasids.length) left.push(`${s.ioasids.length} ioasids`);
      if (s.pool.allocated + s.pool.parked) left.push(`${s.pool.allocated} allocated + ${s.pool.parked} parked PASIDs`);
      if (s.routes.length) left.push(`${s.routes.length} routes`);
      if (s.vms.length) left.push(`${s.vms.length} KVM VMs`);
      if (s.pins.length) left.push(`${s.pins.length} pinned frames`);
      if (s.allocatedFrames) left.push(`${s.allocatedFrames} allocated frames`);
      if (s.pageRequests.length) left.push(`${s.pageRequests.length} pending page request groups`);
      if (s.faultQueues.length) left.push(`${s.faultQueues.length} fault queues`);
      if (s.openFiles) left.push(`${s.openFiles} open files`);
      const opened = s.devices.filter((d) => d.openedBy !== null);
      if (opened.length) left.push(`devices opened: ${opened.map((d) => d.bdf).join(', ')}`);
      return left.length ? [`no process runs, yet the host holds ${left.join(', ')}`] : [];
    },
  }),
];
