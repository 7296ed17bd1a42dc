// Mirrors one guest vPASID on the host, in the order of DESIGN §4: page table → authorize device(s) →
// program KVM; teardown is the exact reverse (UNMAP_PASID, DISALLOW, DESTROY). One host ioasid per
// (VM, vPASID): KVM has a single vPASID→pPASID table per VM, so every vrid bound to the same vPASID
// shares that ioasid (a second device only ALLOWs it).
import { KernelError } from '@app/shared/errno';
import type { PgtblSpec } from '@app/shared/contract/host-kernel';
import type { HostKernelPort } from '../host-kernel.port';
import type { MirroredEntry } from './viommu.types';

export type BindingPort = Pick<
  HostKernelPort,
  'alloc' | 'bindPgtbl' | 'allowIoasid' | 'mapPasid' | 'unmapPasid' | 'disallowIoasid' | 'destroy' | 'invalidate'
>;

export interface BindingContext {
  port: BindingPort;
  vmFd: number;
  ioasidFd: number;
  /** The VM's GPA ioasid (kind iova): parent of every nested vPASID table. */
  gpaIoasid: number;
  deviceFd(vrid: number): number;
}

export interface SetupOutcome {
  /** null when nothing was set up (every step unwound). */
  ioasid: number | null;
  allowed: number[];
  refused: Array<{ vrid: number; error: KernelError }>;
}

function asKernelError(err: unknown): KernelError {
  if (err instanceof KernelError) return err;
  return new KernelError('EIO', `host call failed: ${(err as Error).message}`);
}

function pgtblFor(ctx: BindingContext, entry: MirroredEntry): PgtblSpec {
  // Pass-through (PGTT 4) = nested with no root: the PASID sees the parent's GPA space (DESIGN §2).
  return entry.flptr === null
    ? { kind: 'nested', parent: ctx.gpaIoasid }
    : { kind: 'nested', parent: ctx.gpaIoasid, root: entry.flptr };
}

/** Best-effort undo: a failing undo must not hide the error that caused it; process death cleans the rest. */
async function quietly(step: () => Promise<unknown>, errors: KernelError[]): Promise<void> {
  try {
    await step();
  } catch (err) {
    errors.push(asKernelError(err));
  }
}

/** ALLOC, BIND_PGTBL, ALLOW (each vrid), MAP_PASID. A vrid whose ALLOW fails is refused alone. */
export async function setupBinding(
  ctx: BindingContext,
  vpasid: number,
  entry: MirroredEntry,
  vrids: number[],
): Promise<SetupOutcome> {
  const refuseAll = (error: KernelError): SetupOutcome => ({ ioasid: null, allowed: [], refused: vrids.map((vrid) => ({ vrid, error })) });
  let ioasid: number;
  try {
    ioasid = await ctx.port.alloc(ctx.ioasidFd);
  } catch (err) {
    return refuseAll(asKernelError(err));
  }
  const unwindErrors: KernelError[] = [];
  try {
    await ctx.port.bindPgtbl(ctx.ioasidFd, ioasid, pgtblFor(ctx, entry));
  } catch (err) {
    await quietly(() => ctx.port.destroy(ctx.ioasidFd, ioasid), unwindErrors);
    return refuseAll(asKernelError(err));
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
  if (allowed.length === 0) {
    await quietly(() => ctx.port.destroy(ctx.ioasidFd, ioasid), unwindErrors);
    return { ioasid: null, allowed: [], refused };
  }
  try {
    await ctx.port.mapPasid(ctx.vmFd, { vpasid, ioasidFd: ctx.ioasidFd, ioasid });
  } catch (err) {
    for (const vrid of [...allowed].reverse()) {
      await quietly(() => ctx.port.disallowIoasid(ctx.deviceFd(vrid), { ioasidFd: ctx.ioasidFd, ioasid }), unwindErrors);
    }
    await quietly(() => ctx.port.destroy(ctx.ioasidFd, ioasid), unwindErrors);
    return refuseAll(asKernelError(err));
  }
  return { ioasid, allowed, refused };
}

/** UNMAP_PASID, DISALLOW (each vrid, newest first), DESTROY. Keeps going past failures and returns them. */
export async function teardownBinding(
  ctx: BindingContext,
  vpasid: number,
  ioasid: number,
  vrids: number[],
): Promise<KernelError[]> {
  const errors: KernelError[] = [];
  await quietly(() => ctx.port.unmapPasid(ctx.vmFd, vpasid), errors);
  for (const vrid of [...vrids].reverse()) {
    await quietly(() => ctx.port.disallowIoasid(ctx.deviceFd(vrid), { ioasidFd: ctx.ioasidFd, ioasid }), errors);
  }
  await quietly(() => ctx.port.destroy(ctx.ioasidFd, ioasid), errors);
  return errors;
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

export async function disallowOne(ctx: BindingContext, ioasid: number, vrid: number): Promise<KernelError[]> {
  const errors: KernelError[] = [];
  await quietly(() => ctx.port.disallowIoasid(ctx.deviceFd(vrid), { ioasidFd: ctx.ioasidFd, ioasid }), errors);
  return errors;
}
