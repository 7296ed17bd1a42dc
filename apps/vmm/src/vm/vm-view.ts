// A VM as the VMM tells it (DESIGN §11: a guest never learns a host id). The VM's own token reads the guest's
// view: state and, when stopped, why, in guest terms. The VMM admin also reads the host side: the VM's host
// pid and the host's own account of why it stopped (which names host pids, fds and URLs; the journal keeps it).
import type { EventSink, Lifeline } from '@app/shared/lifeline/event-sink';
import { KernelError } from '@app/shared/errno';
import type { VmRow } from '../persistence/vm.entity';
import type { Vm } from './vm-builder';

/** One VM as the VMM runs it: its record, its host side (null when stopped) and its two lifelines. */
export interface VmRuntime {
  row: VmRow;
  vm: Vm | null;
  hostLifeline: Lifeline | null;
  guestLifeline: EventSink | null;
  /** Set while the VMM itself tears the host side down, so the host's end of the lifeline is expected. */
  stopping: boolean;
  /** False while `create` is still building it: the id is reserved but the VM does not exist yet. */
  ready: boolean;
  /** True while its host side is being built again (a VMM restart, or `start`). */
  restoring: boolean;
  /** The host's account of the last stop (admin only; not persisted: the `vm.stopped` row keeps it). */
  hostDetail: string | null;
  /** The reason of the host's `exit` event for the VM's current host process; null until one came. */
  hostExit: string | null;
}

/** A VM's runtime for its record: not built yet, no lifelines. */
export function newRuntime(row: VmRow, flags: Pick<VmRuntime, 'ready' | 'restoring'>): VmRuntime {
  return { row, vm: null, hostLifeline: null, guestLifeline: null, stopping: false, hostDetail: null, hostExit: null, ...flags };
}

export interface VmView {
  id: number;
  name: string;
  memoryMiB: number;
  vcpus: number;
  devices: string[];
  state: 'running' | 'starting' | 'stopped';
  /** Why it is stopped, in guest terms; null unless stopped. */
  stopReason: string | null;
  guestAttached: boolean;
  /** Admin only: the VM's host process. */
  hostPid?: number | null;
  /** Admin only: why it stopped, as the host side saw it. */
  hostDetail?: string | null;
}

/** Why a VM stopped: in guest terms (what `GET /v1/vms/:id` tells the VM) and in host terms (the operator's). */
export interface StopCause {
  guest: string;
  host: string;
}

/** The host ended the VM's process (killed, or the host kernel went away). */
export function hostSideEnded(pid: number, reason: string): StopCause {
  return { guest: 'powered off: its host side ended', host: `host process ${pid} ended: ${reason}` };
}

/** Building the host side again failed (`when`: a VMM restart): the guest learns the errno only. */
export function powerOnFailed(when: string, err: unknown): StopCause {
  const errno = err instanceof KernelError ? err.errno : 'EIO';
  return { guest: `power-on failed (${errno})`, host: `${when}: ${(err as Error).message}` };
}

export function viewOf(rt: VmRuntime, admin: boolean): VmView {
  const stopped = !rt.vm && !rt.restoring;
  const v: VmView = {
    id: rt.row.id,
    name: rt.row.name,
    memoryMiB: rt.row.memoryMiB,
    vcpus: rt.row.vcpus,
    devices: JSON.parse(rt.row.devices) as string[],
    state: rt.vm ? 'running' : rt.restoring ? 'starting' : 'stopped',
    stopReason: stopped ? rt.row.stopReason : null,
    guestAttached: rt.guestLifeline !== null,
  };
  if (admin) Object.assign(v, { hostPid: rt.vm ? rt.vm.handles.pid : null, hostDetail: stopped ? rt.hostDetail : null });
  return v;
}
