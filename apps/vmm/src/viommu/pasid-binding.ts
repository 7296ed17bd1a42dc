// Mirrors one guest vPASID on the host, in the order of DESIGN §4: page table → authorize device(s) →
// program KVM; teardown is the exact reverse (UNMAP_PASID, DISALLOW, DESTROY). One host ioasid per
// (VM, vPASID): KVM has a single vPASID→pPASID table per VM, so every vrid bound to the same vPASID
// shares that ioasid (a second device only ALLOWs it). A release step that fails is never forgotten:
// it is returned as pending, so the caller can keep the binding as stale and retry it.
import { KernelError } from '@app/shared/errno';
import type { PgtblSpec } from '@app/shared/contract/host-kernel';
import type { HostKernelPort } from '../host-kernel.port';
import type { MirroredEntry, PendingTeardown } from './viommu.types';

export type BindingPort = Pick<
  HostKernelPort,
  'alloc' | 'bindPgtbl' | 'allowIoasid' | 'mapPasid' | 'unmapPasid' | 'disallowIoasid' | 'destroy' | 'invalidate' | 'readFaultGroups' | 'respondFault'
>;

export interface BindingContext {
  port: BindingPort;
  vmFd: number;
  ioasidFd: number;
  /** The VM's GPA ioasid (kind iova): parent of every nested vPASID table. */
  gpaIoasid: number;
  /** The VM's host fault queue: every nested vPASID table sends its page requests there. */
  faultQueue: number;
  deviceFd(vrid: number): number;
}

/** A host call that failed while releasing, with the vrid it concerned (null for UNMAP_PASID / DESTROY). */
export interface StepError {
  vrid: number | null;
  error: KernelError;
}

export interface TeardownOutcome {
  /** null when the host holds nothing more for this binding; else the steps still to retry. */
  left: PendingTeardown | null;
  errors: StepError[];
}

export interface SetupOutcome {
  /** null when nothing was set up (every step unwound, or the unwind failed: see `stale`). */
  ioasid: number | null;
  allowed: number[];
  refused: Array<{ vrid: number; error: KernelError }>;
  /** The setup failed and so did part of its unwind: what the host may still hold. */
  stale: { ioasid: number; left: PendingTeardown; errors: StepError[] } | null;
}

function asKernelError(err: unknown): KernelError {
  if (err instanceof KernelError) return err;
  return new KernelError('EIO', `host call failed: ${(err as Error).message}`);
}

function pgtblFor(ctx: BindingContext, entry: MirroredEntry): PgtblSpec {
  // Pass-through (PGTT 4) = nested with no root: the PASID sees the parent's GPA space (DESIGN §2).
  return entry.flptr === null
    ? { kind: 'nested', parent: ctx.gpaIoasid, faultQueue: ctx.faultQueue }
    : { kind: 'nested', parent: ctx.gpaIoasid, root: entry.flptr, faultQueue: ctx.faultQueue };
}

/** Every teardown step of a fully mirrored binding allowed on `vrids`. */
export function fullTeardown(vrids: number[]): PendingTeardown {
  return { mapped: true, vrids: [...vrids], live: true };
}

/**
 * One release step; true when done. ENOENT means the host holds nothing for it any more (e.g. an earlier
 * try succeeded but its answer was lost), so it counts as done; any other error leaves the step pending.
 */
async function releaseStep(step: () => Promise<unknown>, vrid: number | null, errors: StepError[]): Promise<boolean> {
  try {
    await step();
    return true;
  } catch (err) {
    const error = asKernelError(err);
    if (error.errno === 'ENOENT') return true;
    errors.push({ vrid, error });
    return false;
  }
}

/**
 * ALLOC, BIND_PGTBL, ALLOW (each vrid), MAP_PASID. A vrid whose ALLOW fails is refused alone. A failing
 * step unwinds what was done, in reverse; if the unwind fails too, `stale` says what the host still holds.
 */
export async function setupBinding(
  ctx: BindingContext,
  vpasid: number,
  entry: MirroredEntry,
  vrids: number[],
): Promise<SetupOutcome> {
  const refuseAll = (error: KernelError): SetupOutcome['refused'] => vrids.map((vrid) => ({ vrid, error }));
  let ioasid: number;
  try {
    ioasid = await ctx.port.alloc(ctx.ioasidFd);
  } catch (err) {
    return { ioasid: null, allowed: [], refused: refuseAll(asKernelError(err)), stale: null };
  }
  const unwind = async (refused: SetupOutcome['refused'], pending: PendingTeardown): Promise<SetupOutcome> => {
    const out = await teardownBinding(ctx, vpasid, ioasid, pending);
    return { ioasid: null, allowed: [], refused, stale: out.left ? { ioasid, left: out.left, errors: out.errors } : null };
  };
  try {
    await ctx.port.bindPgtbl(ctx.ioasidFd, ioasid, pgtblFor(ctx, entry));
  } catch (err) {
    return unwind(refuseAll(asKernelError(err)), { mapped: false, vrids: [], live: true });
  }
  const allowed: number[] = [];
  const refused: SetupOutcome['refused'] = [];
  for (const vrid of vrids) {
    try {
      await ctx.port.allowIoasid(ctx.deviceFd(vrid), { ioasidFd: ctx.ioasidFd, ioasid, mode: 'pasid' });
      allowed.push(vrid);
    } catch (err) {
      refused.push({ vrid, error: asKernelError(err) });
    }
  }
  if (allowed.length === 0) return unwind(refused, { mapped: false, vrids: [], live: true });
  try {
    await ctx.port.mapPasid(ctx.vmFd, { vpasid, ioasidFd: ctx.ioasidFd, ioasid });
  } catch (err) {
    // A failed MAP_PASID maps nothing (every host call is all-or-nothing, DESIGN §5): no UNMAP to do.
    return unwind(refuseAll(asKernelError(err)), { mapped: false, vrids: allowed, live: true });
  }
  return { ioasid, allowed, refused, stale: null };
}

/**
 * The steps of `pending`, in teardown order: UNMAP_PASID, DISALLOW (each vrid, newest first), DESTROY.
 * A failed step does not stop the later ones (cutting the devices off the page table matters more than
 * the order, and a destroyed ioasid stops translating for KVM too, DESIGN §2); it is returned in `left`.
 */
export async function teardownBinding(
  ctx: BindingContext,
  vpasid: number,
  ioasid: number,
  pending: PendingTeardown,
): Promise<TeardownOutcome> {
  const errors: StepError[] = [];
  const mapped = pending.mapped && !(await releaseStep(() => ctx.port.unmapPasid(ctx.vmFd, vpasid), null, errors));
  const vrids: number[] = [];
  for (const vrid of [...pending.vrids].reverse()) {
    const done = await releaseStep(() => ctx.port.disallowIoasid(ctx.deviceFd(vrid), { ioasidFd: ctx.ioasidFd, ioasid }), vrid, errors);
    if (!done) vrids.unshift(vrid);
  }
  const live = pending.live && !(await releaseStep(() => ctx.port.destroy(ctx.ioasidFd, ioasid), null, errors));
  return { left: mapped || live || vrids.length > 0 ? { mapped, vrids, live } : null, errors };
}

/** A further device on an already mirrored vPASID: only the authorization step. */
export async function allowOne(ctx: BindingContext, ioasid: number, vrid: number): Promise<KernelError | null> {
  try {
    await ctx.port.allowIoasid(ctx.deviceFd(vrid), { ioasidFd: ctx.ioasidFd, ioasid, mode: 'pasid' });
    return null;
  } catch (err) {
    return asKernelError(err);
  }
}

/** DISALLOW of one device leaving a binding; the error when the host may still hold the route. */
export async function disallowOne(ctx: BindingContext, ioasid: number, vrid: number): Promise<KernelError | null> {
  const errors: StepError[] = [];
  await releaseStep(() => ctx.port.disallowIoasid(ctx.deviceFd(vrid), { ioasidFd: ctx.ioasidFd, ioasid }), vrid, errors);
  return errors[0]?.error ?? null;
}
