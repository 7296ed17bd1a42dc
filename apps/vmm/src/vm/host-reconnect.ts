// When the host kernel goes away (a crash, a reboot), every VM's host process goes with it; a VMM that outlives it
// reconnects: it waits until the host answers again, then powers the VMs that were running on again by itself
// (vm-manager.ts). libvirt does the same when qemu's host side returns (its reconnect to running domains); here the
// domains died with the host, so coming back is a power cycle. One wait is shared by every VM that lost the host.
import { type KernelError, noAnswer } from '@app/shared/errno';
import { HOST_SHUTDOWN_REASON } from '@app/shared/contract/host-kernel';
import type { Timers } from '@app/shared/timers';

/** Back-off between two pings of an absent host: doubling from the first, capped. */
export const RECONNECT_FIRST_MS = 100;
export const RECONNECT_MAX_MS = 2000;

/** A host call that never reached the host kernel (REST: no connection; in process: the host is down). */
export function hostUnreachable(err: unknown): boolean {
  // Not a timeout: a host that is slow to answer is still there.
  return noAnswer(err) && (err as KernelError).errno === 'EIO';
}

/**
 * Whether a VM's host lifeline ended because the host kernel itself went away: the stream broke with no `exit`
 * event (a crash), or the exit was the host's own shutdown. Any other exit (killed by the admin, the process's
 * own exit) was meant for this VM alone: it stays stopped until the operator starts it.
 */
export function hostWentAway(exitReason: string | null): boolean {
  return exitReason === null || exitReason === HOST_SHUTDOWN_REASON;
}

export class HostReconnect {
  private waiting: Promise<boolean> | null = null;
  private stopped = false;

  constructor(
    private readonly ping: () => Promise<void>,
    private readonly timers: Timers,
  ) {}

  /** Resolves true once the host answers a ping, false if the VMM stops first. */
  untilBack(): Promise<boolean> {
    this.waiting ??= this.poll().finally(() => (this.waiting = null));
    return this.waiting;
  }

  /** The VMM shuts down: no more pings. */
  stop(): void {
    this.stopped = true;
  }

  private async poll(): Promise<boolean> {
    for (let delay = RECONNECT_FIRST_MS; !this.stopped; delay = Math.min(2 * delay, RECONNECT_MAX_MS)) {
      try {
        await this.ping();
        return !this.stopped;
      } catch {
        await new Promise<void>((resolve) => this.timers.after(delay, resolve));
      }
    }
    return false;
  }
}
