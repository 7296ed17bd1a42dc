// What happens to the stack from outside any tenant (DESIGN §9 external events, §10, §11): the VMM SIGKILLed and
// restarted (every VM power-cycled), logical time advanced past PRQ_TIMEOUT_MS, a device's engine stalled and
// released, the admin reading the pool, faults and limits, and a device doing DMA with some PASID on its own —
// reading (and writing) through whatever that route's table reaches: the isolation checks then look at the bytes.
import { PAGE_SIZE } from '@app/shared/x86/x86.constants';
import { canary, type Owner } from '../../replay/invariants/canary';
import { call, type FuzzOp, type GenContext, op, step } from '../op';

const admin = (method: string, path: string, body: unknown = null): ReturnType<typeof call> => call({ app: 'host-kernel', method, path, body, principal: 'admin' });

export class World {
  readonly id = 'world';
  /** Devices whose engine this world stopped (released again soon). */
  private paused = new Set<string>();

  propose(g: GenContext): FuzzOp | null {
    const { rng, snap } = g;
    if (!snap.vmm) return op('world/restart-vmm', this.id, [step('restart', 'vmm')]);
    if (this.paused.size && rng.chance(0.5)) return this.engine(rng.pick([...this.paused]), true);
    const choice = rng.weighted<() => FuzzOp | null>([
      [0.6, () => op('world/kill-vmm', this.id, [step('kill', 'vmm')])],
      [0.3, () => op('world/restart-vmm', this.id, [step('restart', 'vmm')])],
      [1, () => op('world/advance', this.id, [step('advance', rng.pick([10_001, 500]))])],
      [3, () => this.dma(g)],
      [1, () => this.adminRead(g)],
      [0.4, () => this.engine(rng.pick(g.devices).bdf, false)],
    ]);
    return choice ? choice() : null;
  }

  private engine(bdf: string, running: boolean): FuzzOp {
    if (running) this.paused.delete(bdf);
    else this.paused.add(bdf);
    return op(running ? 'world/engine-run' : 'world/engine-stop', this.id, [admin('POST', `/v1/hw/devices/${bdf}/engine`, { running })]);
  }

  private adminRead(g: GenContext): FuzzOp {
    const { rng, snap } = g;
    const pasid = snap.host.ioasids.length && rng.chance(0.7) ? rng.pick(snap.host.ioasids).id : rng.range(1, 64);
    const pid = snap.host.processes.length ? rng.pick(snap.host.processes).pid : 100;
    const path = rng.pick([`/v1/hw/pasids?pasid=${pasid}`, '/v1/hw/iommu/faults', `/v1/hw/limits?pid=${pid}`, '/v1/hw/iommu/page-requests', '/v1/hw/pasids']);
    return op(`world/admin-read-${path.split('?')[0].split('/').pop()}`, this.id, [admin('GET', path)]);
  }

  /** A device's DMA tagged with a PASID some route has (or none: its RID route), at an address its table may map. */
  private dma(g: GenContext): FuzzOp {
    const { rng, snap } = g;
    const route = snap.host.routes.length && rng.chance(0.9) ? rng.pick(snap.host.routes) : null;
    const bdf = route?.bdf ?? rng.pick(g.devices).bdf;
    const pasid = route ? route.ppasid : rng.range(1, 64);
    const address = rng.chance(0.8) ? rng.int(g.vmMemoryMiB * 256) * PAGE_SIZE : rng.pick([0, 2 ** 47 - PAGE_SIZE, 0x400000 + rng.int(16) * PAGE_SIZE]);
    const length = rng.pick([64, PAGE_SIZE, 2 * PAGE_SIZE]);
    const write = rng.chance(0.3);
    const owner = route ? this.ownerOf(g, route.ioasid) : null;
    const body = { ...(pasid === null ? {} : { pasid }), address, length, write, ...(write && owner ? { data: canary(owner, length).toString('base64') } : {}) };
    if (write && !owner) return op('world/dma-read', this.id, [admin('POST', `/v1/hw/devices/${bdf}/dma`, { ...body, write: false })]);
    return op(write ? 'world/dma-write' : 'world/dma-read', this.id, [admin('POST', `/v1/hw/devices/${bdf}/dma`, body)]);
  }

  /** Whose bytes a DMA through ioasid `id` may write: its owner's (a VM's, when a VMM-made process owns it). */
  private ownerOf(g: GenContext, id: number): Owner | null {
    const pid = g.snap.host.ioasids.find((i) => i.id === id)?.owner.pid;
    if (pid === undefined) return null;
    const vm = g.snap.vmm?.vms.find((v) => v.host?.pid === pid);
    return vm ? { kind: 'vm', vm: vm.id } : { kind: 'host', pid };
  }
}
