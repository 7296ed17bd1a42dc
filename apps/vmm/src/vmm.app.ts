// One running VMM, whichever door it is reached by (DESIGN §8): its VMs, their virtual hardware and vIOMMUs,
// over the journal, with the host kernel behind a HostKernelPort (REST, or in-process). The Nest app and the
// in-process stack both wrap exactly this.
import { type AuthKind, authenticateBearer, sameToken } from '@app/shared/auth/bearer';
import { seededTokens } from '@app/shared/replay/seeded';
import type { Journal } from '@app/shared/journal/journal';
import type { HostKernelPort } from './host-kernel.port';
import { ViommuOps } from './viommu/viommu-ops';
import { VmHardware } from './vm/vm-hardware';
import { VmManager } from './vm/vm-manager';
import type { VmmCaller } from './vmm-caller';

export interface VmmAppOptions {
  journal: Journal;
  host: HostKernelPort;
  adminToken: string;
  pasidQuota: number;
  /** Requests each VM's guest page request queue holds (vIOMMU default otherwise). */
  guestPrqDepth?: number;
  publicUrl?: () => string | null;
  newToken?: () => string;
  /** Deterministic mode (DESIGN §9): VM tokens come from this boot's stream of the seed. */
  seed?: number | null;
  onError?: (message: string) => void;
}

export class VmmApp {
  readonly vms: VmManager;
  readonly hardware: VmHardware;
  readonly viommu: ViommuOps;

  private constructor(
    readonly journal: Journal,
    private readonly adminToken: string,
    opts: VmmAppOptions,
  ) {
    this.vms = new VmManager({
      journal,
      host: opts.host,
      pasidQuota: opts.pasidQuota,
      guestPrqDepth: opts.guestPrqDepth,
      publicUrl: opts.publicUrl ?? (() => null),
      newToken: opts.newToken ?? seededTokens(opts.seed ?? null, `vmm/vm-token/boot-${journal.bootSeq}`),
      onError: opts.onError,
    });
    this.hardware = new VmHardware(this.vms, journal);
    this.viommu = new ViommuOps(this.vms, journal);
  }

  /** Loads the VM records (VMs that were running are rebuilt by restoreAll, in the background). */
  static async open(opts: VmmAppOptions): Promise<VmmApp> {
    const app = new VmmApp(opts.journal, opts.adminToken, opts);
    await app.vms.load();
    return app;
  }

  /**
   * The REST guard's rule for a route of auth `kind` on VM `id`, applied to a token: the caller, or the refusal
   * (before any journal row), whichever door the call came through.
   */
  authorize(kind: AuthKind, token: string | null, id?: number): VmmCaller {
    const p = authenticateBearer(kind, token, { isAdminToken: (t) => this.isAdminToken(t), callerForToken: (t) => this.vms.idForToken(t) }, { param: 'id', value: id });
    return p.isAdmin ? { kind: 'admin' } : p.callerId !== undefined ? { kind: 'vm', id: p.callerId } : { kind: 'anyone' };
  }

  /** Whose a bearer token is, as an input row records it (DESIGN §9): `admin`, `vm:<id>`, or `none`. */
  principalOf(token: string | null): string {
    if (token === null) return 'none';
    if (this.isAdminToken(token)) return 'admin';
    const id = this.vms.idForToken(token);
    return id === undefined ? 'none' : `vm:${id}`;
  }

  isAdminToken(token: string): boolean {
    return sameToken(token, this.adminToken);
  }
}
