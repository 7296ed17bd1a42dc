// DESIGN §11 and §5: no 5xx ever, and a refused call changes nothing (the iommufd fail_nth rule). A call that
// got no answer (sent in the background to an app that was then killed, or to an app that is down) is not a 5xx.
// "Changes nothing" compares the state every app reports before and after a step whose every call was refused,
// when nothing but those calls journaled meanwhile (a timer that fired in between is not the refusal's doing).
import equal from 'fast-deep-equal';
import type { GuestAppStatus } from '../../apps/guest/src/guest.app';
import type { KernelState } from '../../apps/host-kernel/src/kernel-state';
import type { JournalEvent } from '@app/shared/journal/journal';
import { ERRNO, isErrno } from '@app/shared/errno';
import { check, type Check, type Snapshot, type StepCall, type StepRecord } from './types';

const GROUP = 'calls';

/** The in-process door's answer for an app that is not running (a REST client would see the connection fail). */
const notRunning = (c: StepCall): boolean => c.response?.status === 502 && /is not running|no guest running/.test(String((c.response.body as { message?: string } | null)?.message));

export const answered = (c: StepCall): boolean => c.response !== null && c.response.status !== 0 && !notRunning(c);

/**
 * A server error: a 5xx answer other than the contract's own (DESIGN §5: 507 ENOSPC/ENOMEM/ENFILE/EMFILE, 501
 * EOPNOTSUPP/ENOTTY — a resource limit or an unsupported operation, each with its errno's status).
 */
export function serverError(c: StepCall): boolean {
  const status = c.response?.status ?? 0;
  if (!answered(c) || status < 500) return false;
  const errno = (c.response?.body as { errno?: unknown } | null)?.errno;
  return !(isErrno(errno) && ERRNO[errno].status === status && (status === 507 || status === 501));
}

/**
 * What a refusal must leave as it was: the host's object graph, the VMM's VMs and shadow tables, each guest. An
 * exited host process holds nothing (no fd, no frame): its row is history, like a consumed pid. A VMM call the VMM
 * refuses half-way (create-vm whose device another VM holds) may leave one, as a failed QEMU launch leaves a pid used,
 * and the devices it opened and closed again reset (`reset`: openedDevices). A guest submit refused after it took a
 * completion slot may leave the slot's page mapped (`submitters`: completionAreas).
 */
function comparable(s: Snapshot, work: CpuWork, reset: ReadonlySet<string>, submitters: ReadonlyMap<number, ReadonlySet<number>>): unknown {
  const processes = s.host.processes.filter((p) => p.state !== 'exited');
  let host = { ...s.host, processes };
  if (reset.size > 0) host.devices = host.devices.map((d) => (reset.has(d.bdf) ? idle(d) : d));
  if (work !== 'none') host = withoutIa32Pasid(host);
  const guests = [...s.guests].map(([id, g]) => {
    let guest = { ...g, bootedAtMs: null };
    const pids = submitters.get(id);
    if (pids) guest = { ...guest, frames: { ...guest.frames, free: 0 }, processes: guest.processes.map((p) => (pids.has(p.pid) ? { ...p, mappings: 0 } : p)) };
    return [id, work === 'device' ? guestWithoutDeviceWork(guest) : guest];
  });
  return { host: work === 'device' ? withoutDeviceWork(host) : host, vmm: s.vmm, guests };
}

/**
 * The guest processes (by VM) of the step's submits. A submit takes a completion slot and zeroes its record before
 * the instruction (accel-driver.ts), mapping a page for the process's completion area when every slot is busy; the
 * page stays the area's, for the next submits, whatever this one answers, as a user-space runtime keeps its
 * completion buffers. Fuzzer seed 13, after 6,494 operations: a submit answered 409 EAGAIN (its queue stayed full)
 * had mapped one, `$.guests[0][1].frames.free: 1013 → 1009` (the page and three table pages). Only the guest's free
 * frames and the submitter's mapping count are left out; its other processes, and every host frame, stay compared.
 */
function completionAreas(step: StepRecord): Map<number, Set<number>> {
  const out = new Map<number, Set<number>>();
  for (const c of step.calls) {
    if (c.app !== 'guest' || c.method !== 'POST' || c.vm === undefined) continue;
    const submit = /^\/v1\/processes\/(\d+)\/submit$/.exec(c.path);
    if (!submit) continue;
    const pids = out.get(c.vm) ?? new Set<number>();
    pids.add(Number(submit[1]));
    out.set(c.vm, pids);
  }
  return out;
}

/**
 * What the step ran on a CPU: an ENQCMD that executed as an instruction (`instruction`: the portal answered, even
 * ZF=1, or it raised #GP), one whose descriptor a device took (`device`), or neither.
 */
type CpuWork = 'none' | 'instruction' | 'device';

/**
 * The host without the IA32_PASIDs: an ENQCMD that executed ran with its task's IA32_PASID loaded (WRMSR on a vCPU,
 * the task's own on the host), and that stays the CPU's until another task runs, whatever the caller answers after.
 * Fuzzer seed 13, after 6,494 operations: a guest submit whose queue stayed full (ZF=1 on every try) answered 409
 * EAGAIN, and vCPU 0 held the submitting process's vPASID 2 where another's vPASID 1 had been.
 */
function withoutIa32Pasid(host: KernelState): KernelState {
  return { ...host, processes: host.processes.map((p) => ({ ...p, ia32Pasid: 0 })), vms: host.vms.map((v) => ({ ...v, ia32Pasids: [] })) };
}

/**
 * The host without what work a device ran may change (the IA32_PASIDs are already left out): the device's queue,
 * the faults and page requests its DMA raised, and the pages those brought in. Ids, references,
 * IOMMU mappings, attachments, pins and fds stay compared: an ENQCMD changes none of them.
 */
function withoutDeviceWork(host: KernelState): KernelState {
  return {
    ...host,
    processes: host.processes.map((p) => ({ ...p, residentPages: 0 })),
    allocatedFrames: 0,
    devices: host.devices.map(idle),
    faultQueues: [],
    pageRequests: [],
  };
}

/** A device without its queue and engine state: what a device's work, or a reset, changes. */
function idle(d: KernelState['devices'][number]): KernelState['devices'][number] {
  return { ...d, queued: 0, engineRunning: false };
}

/** A guest without the pages its OS brought in for the device's page requests (free frames, mappings). */
function guestWithoutDeviceWork(g: GuestAppStatus): GuestAppStatus {
  return { ...g, frames: { ...g.frames, free: 0 }, processes: g.processes.map((p) => ({ ...p, mappings: 0 })) };
}

/**
 * The first difference between two values, as a JSON path. Both are plain data (snapshots as JSON would give
 * them), where fast-deep-equal answers as node:util's isDeepStrictEqual does (the two differ only on -0 and NaN,
 * which JSON carries as 0 and null), about four times faster: every refused step compares two whole snapshots,
 * and that comparison was a twentieth of an in-process fuzz step.
 */
function firstDifference(a: unknown, b: unknown, path = '$'): string | null {
  if (equal(a, b)) return null;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object' || Array.isArray(a) !== Array.isArray(b)) return `${path}: ${JSON.stringify(a)?.slice(0, 200)} → ${JSON.stringify(b)?.slice(0, 200)}`;
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const k of keys) {
    const d = firstDifference((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], Array.isArray(a) ? `${path}[${k}]` : `${path}.${k}`);
    if (d) return d;
  }
  return `${path}: differs`;
}

/**
 * The devices the step opened (the host journaled a `vfio.open` that succeeded). A VM creation refused half-way
 * opened its first devices before the next one answered EBUSY, and closed them again: closing a device fd resets
 * the function (VFIO's reset on release), which empties its queue and returns its engine to its default, a stall
 * by `hw.engine` included (fuzzer seed 7, operation 7,423). Their queue and engine are a reset's doing; who holds
 * them open stays compared, so a device left open is still a violation.
 */
function openedDevices(rows: Map<string, JournalEvent[]>): Set<string> {
  const out = new Set<string>();
  for (const r of rows.get('host-kernel') ?? []) if (r.operation === 'vfio.open' && r.errno === null && r.object?.startsWith('device:')) out.add(r.object.slice('device:'.length));
  return out;
}

/** The host's ENQCMD rows: an accepted one is a descriptor the device took, whatever its submitter answers after. */
const ENQCMD_ROWS = new Set(['cpu.enqcmd', 'cpu.enqcmds', 'kvm.vcpu_enqcmd', 'kvm.vcpu_enqcmds']);

/**
 * What the step's ENQCMDs ran (CpuWork): `device` when the host journaled an accepted one, `instruction` when one
 * executed without (ZF=1, #GP). A guest submit whose record the device could not write answers 400 EFAULT after
 * its descriptor ran (accel-driver.ts); one whose queue stayed full answers 409 EAGAIN after its tries. What the
 * instruction and the device's work changed is theirs, not a refusal's, and only that is left out of the
 * comparison (withoutIa32Pasid, withoutDeviceWork). An ENQCMD refused with an errno never executed.
 */
function cpuWork(rows: Map<string, JournalEvent[]>): CpuWork {
  let work: CpuWork = 'none';
  for (const r of rows.get('host-kernel') ?? []) {
    if (!ENQCMD_ROWS.has(r.operation) || r.errno !== null) continue;
    if ((r.result as { result?: unknown } | null)?.result === 'accepted') return 'device';
    work = 'instruction';
  }
  return work;
}

/** True when every row journaled in the step belongs to a trace one of the step's own inputs started. */
function onlyOwnRows(rows: Map<string, JournalEvent[]>): boolean {
  const all = [...rows.values()].flat();
  const traces = new Set(all.filter((r) => r.input).map((r) => r.traceId));
  return all.every((r) => traces.has(r.traceId));
}

export const CALL_CHECKS: Check[] = [
  check({
    name: 'no-5xx',
    group: GROUP,
    rule: 'no 5xx ever (a kernel-style errno for every failure; 507 and 501 only as their errnos say, DESIGN §5)',
    run: ({ step }) =>
      (step?.calls ?? [])
        .filter(serverError)
        .map((c) => `${c.app} ${c.method} ${c.path} (${c.principal}) answered ${c.response?.status}: ${JSON.stringify(c.response?.body).slice(0, 300)}`),
  }),
  check({
    name: 'refused-call-changes-nothing',
    group: GROUP,
    rule: 'a refused call changes nothing: no id consumed, no reference, mapping or attachment survives',
    run: ({ step, before, now, rows }) => {
      if (!step || !before || step.event || step.calls.length === 0) return [];
      if (!step.calls.every((c) => answered(c) && (c.response?.status ?? 0) >= 400)) return [];
      if (!onlyOwnRows(rows)) return [];
      const work = cpuWork(rows);
      const reset = openedDevices(rows);
      const areas = completionAreas(step);
      const d = firstDifference(comparable(before, work, reset, areas), comparable(now, work, reset, areas));
      return d ? [`${step.label} was refused (${step.calls.map((c) => `${c.response?.status} ${(c.response?.body as { errno?: string } | null)?.errno ?? ''}`).join(', ')}) yet changed ${d}`] : [];
    },
  }),
];
