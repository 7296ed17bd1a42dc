// What the two VM tenants share: their VM's lifecycle on the VMM (create, power on a stopped one, delete), where
// they read its state (the last observation), and its devices by virtual RID (machine.ts: the n-th device is
// vrid (n + 1) << 3).
import type { VmmState } from '../../apps/vmm/src/vmm-state';
import { type FuzzOp, type GenContext, ok, op, ref, step } from '../op';

export type VmView = VmmState['vms'][number];

export class VmLife {
  vm: string | null = null;
  devices: string[] = [];
  private gen = 0;

  constructor(
    readonly tenant: string,
    private readonly onGone: () => void,
  ) {}

  get principal(): string {
    return `vm:${ref(this.vm as string, 'id')}`;
  }

  get idRef(): string {
    return ref(this.vm as string, 'id');
  }

  id(g: GenContext): number | null {
    return this.vm ? ((g.vars.get(this.vm) as { id?: number } | undefined)?.id ?? null) : null;
  }

  /** The VM as last observed; null when it does not exist (never made, deleted) — and then forgotten. */
  view(g: GenContext): VmView | null {
    const id = this.id(g);
    if (id === null) return null;
    const v = g.snap.vmm?.vms.find((x) => x.id === id) ?? null;
    if (!v && g.snap.vmm) {
      this.vm = null;
      this.onGone();
    }
    return v;
  }

  vrids(): number[] {
    return this.devices.map((_d, n) => (n + 1) << 3);
  }

  create(g: GenContext, name: string): FuzzOp {
    const v = g.fresh();
    const n = g.rng.weighted([[2, 1], [3, 1], [1, 2], [1, 0]]) as number;
    const devices: string[] = [];
    while (devices.length < n) {
      const bdf = g.rng.pick(g.devices).bdf;
      if (!devices.includes(bdf)) devices.push(bdf);
    }
    const spec = { name: `${this.tenant}-${name}${this.gen++}`, memoryMiB: g.vmMemoryMiB, vcpus: g.rng.range(1, 2), devices };
    return op(`${name}/create-vm`, this.tenant, [step('create-vm', spec, { as: v })], ([a]) => {
      if (!ok(a)) return;
      this.vm = v;
      this.devices = devices;
    });
  }

  start(): FuzzOp {
    return op('vm/start', this.tenant, [step('call', { app: 'vmm', method: 'POST', path: `/v1/vms/${this.idRef}/start`, body: null, principal: 'admin' })]);
  }

  remove(): FuzzOp {
    return op('vm/delete', this.tenant, [step('delete-vm', { vm: this.idRef })], ([a]) => {
      if (!ok(a)) return;
      this.vm = null;
      this.onGone();
    });
  }

  /** A call with the VM's own token to its VMM. */
  vmm(method: string, path: string, body: unknown, as?: string): ReturnType<typeof step> {
    return step('call', { app: 'vmm', method, path: `/v1/vms/${this.idRef}${path}`, body, principal: this.principal }, as ? { as } : {});
  }
}
