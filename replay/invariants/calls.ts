// DESIGN §11 and §5: no 5xx ever, and a refused call changes nothing (the iommufd fail_nth rule). A call that
// got no answer (sent in the background to an app that was then killed, or to an app that is down) is not a 5xx.
// "Changes nothing" compares the state every app reports before and after a step whose every call was refused,
// when nothing but those calls journaled meanwhile (a timer that fired in between is not the refusal's doing).
import { isDeepStrictEqual } from 'node:util';
import type { GuestAppStatus } from '../../apps/guest/src/guest.app';
import type { KernelState } from '../../apps/host-kernel/src/kernel-state';
import type { JournalEvent } from '@app/shared/journal/journal';
import { ERRNO, isErrno } from '@app/shared/errno';
import { check, type Check, type Snapshot, type StepCall } from './types';

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
 * and the devices it opened and closed again reset (`reset`: openedDevices).
 */
function comparable(s: Snapshot, ranOnDevice: boolean, reset: ReadonlySet<string>): unknown {
  const processes = s.host.processes.filter((p) => p.state !== 'exited');
  const host = { ...s.host, processes };
  if (reset.size > 0) host.devices = host.devices.map((d) => (reset.has(d.bdf) ? { ...d, queued: 0, engineRunning: false } : d));
  const guests = [...s.guests].map(([id, g]) => {
    const guest = { ...g, bootedAtMs: null };
    return [id, ranOnDevice ? guestWithoutDeviceWork(guest) : guest];
  });
  return { host: ranOnDevice ? withoutDeviceWork(host) : host, vmm: s.vmm, guests };
}

/**
 * The host without what work a device ran may change: the IA32_PASID the instruction was issued with, the
 * device's queue, the faults and page requests its DMA raised, and the pages those brought in. Ids, references,
 * IOMMU mappings, attachments, pins and fds stay compared: an ENQCMD changes none of them.
 */
function withoutDeviceWork(host: KernelState): KernelState {
  return {
    ...host,
    processes: host.processes.map((p) => ({ ...p, ia32Pasid: 0, residentPages: 0 })),
    allocatedFrames: 0,
    devices: host.devices.map((d) => ({ ...d, queued: 0, engineRunning: false })),
    vms: host.vms.map((v) => ({ ...v, ia32Pasids: [] })),
    faultQueues: [],
    pageRequests: [],
  };
}

/** A guest without the pages its OS brought in for the device's page requests (free frames, mappings). */
function guestWithoutDeviceWork(g: GuestAppStatus): GuestAppStatus {
  return { ...g, frames: { ...g.frames, free: 0 }, processes: g.processes.map((p) => ({ ...p, mappings: 0 })) };
}

/** The first difference between two values, as a JSON path. */
function firstDifference(a: unknown, b: unknown, path = '$'): string | null {
  if (isDeepStrictEqual(a, b)) return null;
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
 * True when the step ran work on a device: the host journaled an accepted ENQCMD. A guest submit whose record the
 * device could not write answers 400 EFAULT after that (accel-driver.ts). Its task's IA32_PASID was loaded for the
 * instruction and the device ran the descriptor: what that changed is the instruction's doing, not a refusal's,
 * and only that is left out of the comparison (withoutDeviceWork).
 */
function ranOnDevice(rows: Map<string, JournalEvent[]>): boolean {
  return (rows.get('host-kernel') ?? []).some((r) => ENQCMD_ROWS.has(r.operation) && r.errno === null && (r.result as { result?: unknown } | null)?.result === 'accepted');
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
      const device = ranOnDevice(rows);
      const reset = openedDevices(rows);
      const d = firstDifference(comparable(before, device, reset), comparable(now, device, reset));
      return d ? [`${step.label} was refused (${step.calls.map((c) => `${c.response?.status} ${(c.response?.body as { errno?: string } | null)?.errno ?? ''}`).join(', ')}) yet changed ${d}`] : [];
    },
  }),
];
