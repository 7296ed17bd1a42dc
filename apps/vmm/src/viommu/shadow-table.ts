// The vIOMMU's shadow table: vPASID → the host objects mirroring it (VMM-internal, holds pPASIDs), and the
// release rule. A binding whose teardown fails part way is never dropped while the host may still hold
// something for it (a KVM mapping, a device route, a live ioasid): it stays as a stale binding, counted
// against the quota, until a retry finishes the pending steps. Forgetting it would let the VMM believe V
// is free while KVM still maps it (every later MAP_PASID(V) → EEXIST, the quota under-counted).
import type { KernelError } from '@app/shared/errno';
import { BindingContext, fullTeardown, StepError, teardownBinding } from './pasid-binding';
import type { PendingTeardown, ShadowBinding } from './viommu.types';

export type HostErrorSink = (vrid: number | null, vpasid: number, err: KernelError) => void;

export class ShadowTable {
  private readonly byVpasid = new Map<number, ShadowBinding>();

  constructor(
    private readonly binding: BindingContext,
    /** Each host error met while releasing (the vIOMMU turns it into a guest fault). */
    private readonly onHostError: HostErrorSink,
    /** Runs before a binding is torn down: its waiting page requests are answered first (nothing left waiting). */
    private readonly beforeRetire: (vpasid: number) => Promise<unknown> = async () => undefined,
  ) {}

  get size(): number {
    return this.byVpasid.size;
  }

  get(vpasid: number): ShadowBinding | undefined {
    return this.byVpasid.get(vpasid);
  }

  set(b: ShadowBinding): void {
    this.byVpasid.set(b.vpasid, b);
  }

  vpasids(): number[] {
    return [...this.byVpasid.keys()];
  }

  byIoasid(ioasid: number): ShadowBinding | undefined {
    return [...this.byVpasid.values()].find((b) => b.ioasid === ioasid);
  }

  /** Live (not stale) bindings allowed on `vrid`. */
  boundOn(vrid: number): number {
    return [...this.byVpasid.values()].filter((b) => !b.teardown && b.vrids.includes(vrid)).length;
  }

  /** Deep copies, oldest first. */
  list(): ShadowBinding[] {
    return [...this.byVpasid.values()].map((b) => ({
      ...b,
      entry: { ...b.entry },
      vrids: [...b.vrids],
      snapshots: { ...b.snapshots },
      ...(b.teardown ? { teardown: { ...b.teardown, vrids: [...b.teardown.vrids] } } : {}),
    }));
  }

  /** Keeps what a failed setup could not unwind as a stale binding of `vpasid`. */
  keepStale(base: Omit<ShadowBinding, 'vrids' | 'snapshots' | 'teardown'>, left: PendingTeardown, errors: StepError[]): void {
    for (const e of errors) this.onHostError(e.vrid, base.vpasid, e.error);
    this.set({ ...base, vrids: [...left.vrids], snapshots: {}, teardown: left });
  }

  /**
   * Runs `pending` for `b`. Done → the entry goes. Failed → it stays stale with what is left, and each host
   * error goes to the sink. Returns the errors of a binding that stays stale.
   */
  async retire(b: ShadowBinding, pending: PendingTeardown = b.teardown ?? fullTeardown(b.vrids)): Promise<{ done: boolean; errors: KernelError[] }> {
    if (this.ioasidReused(b)) {
      this.byVpasid.delete(b.vpasid);
      return { done: true, errors: [] };
    }
    await this.beforeRetire(b.vpasid);
    const out = await teardownBinding(this.binding, b.vpasid, b.ioasid, pending);
    for (const e of out.errors) this.onHostError(e.vrid, b.vpasid, e.error);
    if (!out.left) {
      this.byVpasid.delete(b.vpasid);
      return { done: true, errors: [] };
    }
    this.set({ ...b, vrids: [...out.left.vrids], snapshots: {}, teardown: out.left });
    return { done: false, errors: out.errors.map((e) => e.error) };
  }

  /**
   * The host just handed out `ioasid` (ALLOC): a pPASID is only reused once every holder let go, so a
   * stale binding naming it did finish (its reply was lost). Drop it, so no retry ever hits the new user.
   */
  reapReused(ioasid: number): void {
    for (const b of [...this.byVpasid.values()]) if (b.teardown && b.ioasid === ioasid) this.byVpasid.delete(b.vpasid);
  }

  /** Every binding, newest first (UNMAP_PASID, DISALLOW, DESTROY each); the host errors of those left stale. */
  async releaseAll(): Promise<KernelError[]> {
    const errors: KernelError[] = [];
    for (const b of [...this.byVpasid.values()].reverse()) {
      const now = this.byVpasid.get(b.vpasid);
      if (now) errors.push(...(await this.retire(now)).errors);
    }
    return errors;
  }

  /** Another binding names the same pPASID: this one's ioasid was freed and handed out again (see reapReused). */
  private ioasidReused(b: ShadowBinding): boolean {
    return [...this.byVpasid.values()].some((o) => o !== b && o.ioasid === b.ioasid);
  }
}
