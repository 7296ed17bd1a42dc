// An honest guest tenant: a VM with the guest OS booted on it (DESIGN §3), driven through the guest's console as an
// operator would: processes, lazy mmaps, writes of its own canary, SVA binds on its devices, accelerator work
// (whose faults on untouched pages become page requests the guest answers — or leaves unanswered when it booted
// with pageRequests: ignore), unbinds, munmaps; now and then it reboots, or its VM is deleted or powered on again.
import { PAGE_SIZE } from '@app/shared/x86/x86.constants';
import { canary } from '../../replay/invariants/canary';
import { type FuzzOp, type GenContext, ok, op, ref, step } from '../op';
import { VmLife } from './vm-common';

interface GuestProc {
  v: string;
  maps: Array<{ v: string; length: number }>;
  bound: number[];
}

export class GuestTenant {
  readonly kind = 'guest' as const;
  private readonly life: VmLife;
  private procs: GuestProc[] = [];
  private lastPrs: string | null = null;

  constructor(readonly id: string) {
    this.life = new VmLife(id, () => this.forget());
  }

  private forget(): void {
    this.procs = [];
    this.lastPrs = null;
  }

  vmmLost(): void {
    this.forget();
  }

  exposed(): string[] {
    return [];
  }

  private console(method: string, path: string, body: unknown, as?: string): ReturnType<typeof step> {
    return step('call', { app: 'guest', vm: this.life.idRef, method, path, body, principal: 'none' }, as ? { as } : {});
  }

  propose(g: GenContext): FuzzOp | null {
    const { rng } = g;
    const vm = this.life.view(g);
    if (!this.life.vm) return g.snap.vmm ? this.life.create(g, 'guest') : null;
    if (!vm) return null;
    if (vm.state === 'stopped') return rng.chance(0.2) ? this.life.remove() : this.life.start();
    if (vm.state !== 'running') return null;
    const id = this.life.id(g) as number;
    if (!g.snap.guests.has(id)) {
      this.forget();
      const ignore = rng.chance(0.2);
      return op(ignore ? 'guest/boot-ignoring-page-requests' : 'guest/boot', this.id, [step('boot-guest', { vm: this.life.idRef, ...(ignore ? { pageRequests: 'ignore' } : {}) })]);
    }
    const withMaps = this.procs.filter((p) => p.maps.length);
    const vrids = this.life.vrids();
    const choice = rng.weighted<() => FuzzOp>([
      [this.procs.length < 3 ? 6 : 0, () => this.process(g)],
      [this.procs.length ? (withMaps.length < this.procs.length ? 6 : 2) : 0, () => this.mmap(g)],
      [withMaps.length ? 5 : 0, () => this.write(g, id)],
      [withMaps.length ? 3 : 0, () => this.read(g)],
      [this.procs.length && vrids.length ? 6 : 0, () => this.bind(g, true)],
      [this.procs.some((p) => p.bound.length) ? 2 : 0, () => this.bind(g, false)],
      [withMaps.length && vrids.length ? 9 : 0, () => this.submit(g)],
      [withMaps.length ? 1 : 0, () => this.munmap(g)],
      [3, () => this.vmRead(g)],
      [1, () => this.respond(g)],
      [this.procs.length ? 2 : 0, () => this.careless(g)],
      [0.3, () => op('guest/kill', this.id, [step('kill', `guest-${this.life.idRef}`)], () => this.forget())],
      [0.3, () => this.life.remove()],
    ]);
    return choice ? choice() : null;
  }

  private process(g: GenContext): FuzzOp {
    const v = g.fresh();
    return op('guest/process', this.id, [this.console('POST', '/v1/processes', { name: `p${this.procs.length}` }, v)], ([a]) => {
      if (ok(a)) this.procs.push({ v, maps: [], bound: [] });
    });
  }

  private mmap(g: GenContext): FuzzOp {
    const p = g.rng.pick(this.procs);
    const v = g.fresh();
    const length = g.rng.range(1, 4) * PAGE_SIZE;
    return op('guest/mmap', this.id, [this.console('POST', `/v1/processes/${ref(p.v, 'pid')}/mmap`, { length }, v)], ([a]) => {
      if (ok(a)) p.maps.push({ v, length });
    });
  }

  private write(g: GenContext, vm: number): FuzzOp {
    const p = g.rng.pick(this.procs.filter((x) => x.maps.length));
    const m = g.rng.pick(p.maps);
    const pages = g.rng.range(1, m.length / PAGE_SIZE);
    const data = canary({ kind: 'vm', vm }, pages * PAGE_SIZE - g.rng.int(2) * 100).toString('base64');
    return op('guest/write', this.id, [this.console('PUT', `/v1/processes/${ref(p.v, 'pid')}/memory`, { gva: ref(m.v, 'gva'), data })]);
  }

  private read(g: GenContext): FuzzOp {
    const p = g.rng.pick(this.procs.filter((x) => x.maps.length));
    const m = g.rng.pick(p.maps);
    return op('guest/read', this.id, [this.console('GET', `/v1/processes/${ref(p.v, 'pid')}/memory?gva=${ref(m.v, 'gva')}&length=${m.length}`, null)]);
  }

  private bind(g: GenContext, bind: boolean): FuzzOp {
    const p = g.rng.pick(bind ? this.procs : this.procs.filter((x) => x.bound.length));
    const vrid = bind ? g.rng.pick(this.life.vrids()) : g.rng.pick(p.bound);
    return op(bind ? 'guest/bind' : 'guest/unbind', this.id, [this.console('POST', `/v1/sva/${bind ? 'bind' : 'unbind'}`, { pid: ref(p.v, 'pid'), vrid })], ([a]) => {
      if (!ok(a)) return;
      p.bound = bind ? [...new Set([...p.bound, vrid])] : p.bound.filter((x) => x !== vrid);
    });
  }

  private submit(g: GenContext): FuzzOp {
    const p = g.rng.pick(this.procs.filter((x) => x.maps.length));
    const src = g.rng.pick(p.maps);
    const dst = g.rng.pick(p.maps);
    const opName = g.rng.weighted([[5, 'memmove'], [2, 'fill'], [2, 'compare'], [1, 'noop']] as const) as 'memmove' | 'fill' | 'compare' | 'noop';
    const length = g.rng.chance(0.1) ? dst.length + PAGE_SIZE : g.rng.range(1, Math.min(src.length, dst.length) / PAGE_SIZE) * PAGE_SIZE;
    const descriptor = {
      op: opName,
      ...(opName === 'memmove' || opName === 'compare' ? { src: ref(src.v, 'gva') } : {}),
      ...(opName === 'noop' ? {} : { dst: ref(dst.v, 'gva'), length }),
      ...(opName === 'fill' ? { pattern: 0x5a } : {}),
    };
    const vrid = p.bound.length && g.rng.chance(0.85) ? g.rng.pick(p.bound) : g.rng.pick(this.life.vrids());
    return op(`guest/submit-${opName}`, this.id, [this.console('POST', `/v1/processes/${ref(p.v, 'pid')}/submit`, { vrid, descriptor })]);
  }

  private munmap(g: GenContext): FuzzOp {
    const p = g.rng.pick(this.procs.filter((x) => x.maps.length));
    const m = g.rng.pick(p.maps);
    return op('guest/munmap', this.id, [this.console('POST', `/v1/processes/${ref(p.v, 'pid')}/munmap`, { gva: ref(m.v, 'gva'), length: m.length })], ([a]) => {
      if (ok(a)) p.maps = p.maps.filter((x) => x !== m);
    });
  }

  /**
   * A guest program's bad system call, through the console: a mapping's range overrun or cut short, a pid the OS
   * never made, a device the machine lacks, an unbind of what is not bound, a descriptor the driver cannot encode, a
   * field the call does not know. Each must come back with its errno and change nothing (refused-call-changes-
   * nothing compares the guest, the VMM and the host before and after).
   */
  private careless(g: GenContext): FuzzOp {
    const { rng } = g;
    const p = rng.pick(this.procs);
    const pid = ref(p.v, 'pid');
    const m = p.maps.length ? rng.pick(p.maps) : null;
    const gva = m ? (g.vars.get(m.v) as { gva?: number } | undefined)?.gva : undefined;
    const noPid = 900 + rng.int(100);
    const unbound = this.life.vrids().filter((x) => !p.bound.includes(x));
    const anyVrid = (): number => rng.pick(this.life.vrids().length ? this.life.vrids() : [8]);
    const kinds: Array<[number, () => [string, ReturnType<typeof step>]]> = [
      [2, () => ['mmap-length', this.console('POST', `/v1/processes/${pid}/mmap`, { length: rng.pick([0, -4096, 1.5, (64 << 20) + 1]) })]],
      [1, () => ['mmap-no-process', this.console('POST', `/v1/processes/${noPid}/mmap`, { length: PAGE_SIZE })]],
      [1, () => ['mmap-unknown-field', this.console('POST', `/v1/processes/${pid}/mmap`, { length: PAGE_SIZE, prot: 7 })]],
      [1, () => ['bind-no-device', this.console('POST', '/v1/sva/bind', { pid, vrid: rng.pick([0x99, 0x7f]) })]],
      [1, () => ['bind-no-process', this.console('POST', '/v1/sva/bind', { pid: noPid, vrid: anyVrid() })]],
      [unbound.length ? 1 : 0, () => ['unbind-not-bound', this.console('POST', '/v1/sva/unbind', { pid, vrid: rng.pick(unbound) })]],
      [1, () => ['submit-bad-descriptor', this.console('POST', `/v1/processes/${pid}/submit`, { vrid: anyVrid(), descriptor: rng.pick([{ op: 'bogus' }, { op: 'memmove', src: -1, dst: 0, length: PAGE_SIZE }, { op: 'fill', dst: 0, length: PAGE_SIZE, pattern: 'x' }]) })]],
      [1, () => ['submit-no-device', this.console('POST', `/v1/processes/${pid}/submit`, { vrid: 0x99, descriptor: { op: 'noop' } })]],
    ];
    if (m && gva !== undefined) {
      const end = gva + m.length;
      kinds.push(
        // A write that starts inside the mapping and runs past its end: EFAULT, and not a byte of it written.
        [3, () => ['write-past-end', this.console('PUT', `/v1/processes/${pid}/memory`, { gva: end - 100, data: Buffer.alloc(200, 0x5c).toString('base64') })]],
        [2, () => ['read-past-end', this.console('GET', `/v1/processes/${pid}/memory?gva=${gva}&length=${m.length + PAGE_SIZE}`, null)]],
        [2, () => ['munmap-part', this.console('POST', `/v1/processes/${pid}/munmap`, { gva: m.length > PAGE_SIZE && rng.chance(0.5) ? gva + PAGE_SIZE : gva, length: m.length > PAGE_SIZE ? m.length - PAGE_SIZE : m.length + PAGE_SIZE })]],
      );
    }
    const [kind, call] = (rng.weighted(kinds) as () => [string, ReturnType<typeof step>])();
    return op(`guest/careless-${kind}`, this.id, [call]);
  }

  /** What the VM's own token reads of its VMM: itself, its machine, its vIOMMU fault log and page requests, its RAM. */
  private vmRead(g: GenContext): FuzzOp {
    const which = g.rng.pick(['', '/machine', '/viommu/faults', '/viommu/page-requests', `/memory?gpa=${g.rng.int(g.vmMemoryMiB * 256) * PAGE_SIZE}&length=${PAGE_SIZE}`]);
    const v = g.fresh();
    return op(`guest/vm-read${which.split('?')[0].replace(/\//g, '-')}`, this.id, [this.life.vmm('GET', which, null, v)], () => {
      if (which === '/viommu/page-requests') this.lastPrs = v;
    });
  }

  /** The guest kernel answering a page request by hand (what a guest that ignores them leaves to someone). */
  private respond(g: GenContext): FuzzOp {
    const prs = this.lastPrs;
    const body = prs ? { vrid: ref(prs, '0.vrid'), vpasid: ref(prs, '0.vpasid'), grpid: ref(prs, '0.grpid'), code: g.rng.pick(['success', 'invalid', 'failure']) } : { vrid: 8, vpasid: g.rng.range(1, 4), grpid: g.rng.int(4), code: 'success' };
    return op('guest/page-response', this.id, [this.life.vmm('POST', '/viommu/page-response', body)]);
  }
}
