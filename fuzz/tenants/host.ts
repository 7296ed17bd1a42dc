// A host process tenant: a program of its own on the host kernel (DESIGN §2): its memory, ioasid fds with every
// page-table kind (host SVA `mm`, `iova` maps, `nested` over its own iova table), fault queues, VFIO devices, a KVM
// VM of its own, ENQCMD with its PASID. Mostly it uses what it made; sometimes it is hostile: another tenant's fds
// and ioasids, numbers it never got, another pid's routes, a garbage token, a VM's token, floods.
import { IA32_PASID_VALID } from '@app/shared/x86/msr.constants';
import { PAGE_SIZE } from '@app/shared/x86/x86.constants';
import { canary } from '../../replay/invariants/canary';
import { call, type FuzzOp, type GenContext, ok, op, ref, type Tenant } from '../op';

interface Mapping {
  v: string;
  length: number;
}
interface IoasidRef {
  v: string;
  fd: string;
  kind: 'none' | 'mm' | 'iova' | 'nested';
  maps: Array<{ iova: number; length: number }>;
  /** Allowed on a device by this tenant's last allow or disallow of it (what KVM's map-pasid wants: a hint, not state). */
  allowed: boolean;
}

export class HostTenant implements Tenant {
  readonly kind = 'host' as const;
  private proc: string | null = null;
  private gen = 0;
  private mmaps: Mapping[] = [];
  private fds: string[] = [];
  private ioasids: IoasidRef[] = [];
  private queues: Array<{ v: string; fd: string; read?: string }> = [];
  private devices: Array<{ v: string; bdf: string }> = [];
  /**
   * slot: the length of the memslot at GPA 0 once one was made (0: none yet); translation: PASID translation's last
   * setting; mapped: the vPASIDs its maps made and its unmaps have not undone (hints: a destroy or close may end one).
   */
  private kvms: Array<{ v: string; vcpus: number; slot: number; translation: boolean; mapped: number[] }> = [];

  constructor(readonly id: string) {}

  vmmLost(): void {}

  exposed(): string[] {
    return [...this.fds.map((v) => ref(v, 'fd')), ...this.devices.map((d) => ref(d.v, 'fd')), ...this.kvms.map((k) => ref(k.v, 'fd'))];
  }

  private get principal(): string {
    return `pid:${ref(this.proc as string, 'pid')}`;
  }

  private host(method: string, path: string, body: unknown, as?: string, principal = this.principal): ReturnType<typeof call> {
    return call({ app: 'host-kernel', method, path, body, principal }, as ? { as } : {});
  }

  private reset(): void {
    this.proc = null;
    this.mmaps = [];
    this.fds = [];
    this.ioasids = [];
    this.queues = [];
    this.devices = [];
    this.kvms = [];
  }

  propose(g: GenContext): FuzzOp | null {
    const { rng } = g;
    if (this.proc) {
      const pid = (g.vars.get(this.proc) as { pid?: number } | undefined)?.pid;
      if (g.snap.host.processes.find((p) => p.pid === pid)?.state !== 'running') this.reset();
    }
    if (!this.proc) return this.create(g);
    const bound = (k: IoasidRef['kind']): IoasidRef[] => this.ioasids.filter((i) => i.kind === k);
    const choice = rng.weighted<() => FuzzOp | null>([
      [this.mmaps.length < 4 ? 6 : 1, () => this.mmap(g)],
      [this.mmaps.length ? 5 : 0, () => this.write(g)],
      [this.mmaps.length ? 4 : 0, () => this.read(g)],
      [this.fds.length < 2 ? 5 : 1, () => this.simple(g, 'host/ioasid-open', 'POST', '/v1/ioasid', {}, (v) => this.fds.push(v))],
      [this.fds.length ? 7 : 0, () => this.alloc(g)],
      [bound('none').length ? 8 : 0, () => this.bind(g)],
      [bound('iova').length && this.mmaps.length ? 7 : 0, () => this.map(g)],
      [this.ioasids.some((i) => i.maps.length) ? 3 : 0, () => this.unmap(g)],
      [this.ioasids.length ? 2 : 0, () => this.onIoasid(g, 'host/invalidate', 'POST', 'invalidate', rng.chance(0.5) ? {} : { iova: 0, length: PAGE_SIZE })],
      [this.ioasids.length ? 1 : 0, () => this.onIoasid(g, 'host/info', 'GET', null, undefined)],
      [this.ioasids.length ? 3 : 0, () => this.destroy(g)],
      [this.fds.length ? 2 : 0, () => this.faultQueue(g)],
      [this.devices.length < 2 ? 3 : 0, () => this.openDevice(g)],
      [this.devices.length && this.ioasids.some((i) => i.kind !== 'none') ? 7 : 0, () => this.allow(g)],
      [this.devices.length && this.ioasids.length ? 3 : 0, () => this.disallow(g)],
      [this.kvms.length === 0 ? 2 : 0, () => this.simple(g, 'host/kvm-create', 'POST', '/v1/kvm/vms', {}, (v) => this.kvms.push({ v, vcpus: 0, slot: 0, translation: false, mapped: [] }))],
      [this.kvms.length ? 4 : 0, () => this.kvm(g)],
      [bound('mm').length && this.devices.length && this.mmaps.length ? 6 : 0, () => this.enqcmd(g)],
      [this.fds.length + this.devices.length + this.kvms.length ? 2 : 0, () => this.close(g)],
      [1, () => this.look(g)],
      [2, () => this.hostile(g)],
      [1, () => this.exit()],
    ]);
    return choice ? choice() : null;
  }

  private create(g: GenContext): FuzzOp {
    const v = g.fresh();
    const comm = `fz-${this.id}-${this.gen++}`;
    return op('host/process-create', this.id, [call({ app: 'host-kernel', method: 'POST', path: '/v1/processes', body: { comm }, principal: 'none' }, { as: v })], ([a]) => {
      if (ok(a)) this.proc = v;
    });
  }

  /** One call by this process; on success its answer is kept under a fresh name. */
  private simple(g: GenContext, name: string, method: string, path: string, body: unknown, keep: (v: string) => void): FuzzOp {
    const v = g.fresh();
    return op(name, this.id, [this.host(method, path, body, v)], ([a]) => {
      if (ok(a)) keep(v);
    });
  }

  private mmap(g: GenContext): FuzzOp {
    const length = g.rng.chance(0.05) ? g.rng.pick([0, 2 ** 40, 2 ** 53]) : g.rng.range(1, 8) * PAGE_SIZE;
    const v = g.fresh();
    return op('host/mmap', this.id, [this.host('POST', `/v1/processes/${ref(this.proc as string, 'pid')}/mmap`, { length }, v)], ([a]) => {
      if (ok(a)) this.mmaps.push({ v, length });
    });
  }

  private pidOf(g: GenContext): number {
    return (g.vars.get(this.proc as string) as { pid: number }).pid;
  }

  private write(g: GenContext): FuzzOp {
    const m = g.rng.pick(this.mmaps);
    const off = g.rng.int(m.length / PAGE_SIZE) * PAGE_SIZE;
    const length = Math.min(m.length - off, g.rng.range(1, 2) * PAGE_SIZE);
    const data = canary({ kind: 'host', pid: this.pidOf(g) }, length).toString('base64');
    return op('host/write', this.id, [this.host('PUT', `/v1/processes/${ref(this.proc as string, 'pid')}/memory`, { hva: `${ref(m.v, 'hva')}`, data })]);
  }

  private read(g: GenContext): FuzzOp {
    const m = g.rng.pick(this.mmaps);
    return op('host/read', this.id, [this.host('GET', `/v1/processes/${ref(this.proc as string, 'pid')}/memory?hva=${ref(m.v, 'hva')}&length=${m.length}`, null)]);
  }

  private alloc(g: GenContext): FuzzOp {
    const fd = g.rng.pick(this.fds);
    const n = g.rng.chance(0.05) ? g.rng.range(8, 24) : 1;
    const names = Array.from({ length: n }, () => g.fresh());
    const steps = names.map((v) => this.host('POST', `/v1/ioasid/${ref(fd, 'fd')}/ioasids`, {}, v));
    return op(n > 1 ? 'host/alloc-flood' : 'host/alloc', this.id, steps, (as) =>
      as.forEach((a, i) => {
        if (ok(a)) this.ioasids.push({ v: names[i], fd, kind: 'none', maps: [], allowed: false });
      }),
    );
  }

  private path(i: IoasidRef, tail: string | null): string {
    return `/v1/ioasid/${ref(i.fd, 'fd')}/ioasids/${ref(i.v, 'ioasid')}${tail ? `/${tail}` : ''}`;
  }

  private bind(g: GenContext): FuzzOp {
    const i = g.rng.pick(this.ioasids.filter((x) => x.kind === 'none'));
    const parents = this.ioasids.filter((x) => x.kind === 'iova' && x.fd === i.fd);
    const kind = g.rng.weighted<IoasidRef['kind']>([[3, 'mm'], [4, 'iova'], [parents.length ? 4 : 0, 'nested']]) as IoasidRef['kind'];
    let body: Record<string, unknown> = { kind };
    if (kind === 'nested') {
      const p = g.rng.pick(parents);
      const root = p.maps.length && g.rng.chance(0.7) ? g.rng.pick(p.maps).iova : g.rng.int(64) * PAGE_SIZE;
      const queue = this.queues.find((q) => q.fd === i.fd);
      body = { kind, parent: ref(p.v, 'ioasid'), ...(g.rng.chance(0.8) ? { root } : {}), ...(queue && g.rng.chance(0.5) ? { faultQueue: ref(queue.v, 'faultQueue') } : {}) };
    }
    return op(`host/bind-${kind}`, this.id, [this.host('POST', this.path(i, 'pgtbl'), body)], ([a]) => {
      if (ok(a)) i.kind = kind;
    });
  }

  private map(g: GenContext): FuzzOp {
    const i = g.rng.pick(this.ioasids.filter((x) => x.kind === 'iova'));
    const m = g.rng.pick(this.mmaps);
    const iova = g.rng.chance(0.2) && i.maps.length ? g.rng.pick(i.maps).iova : g.rng.int(256) * PAGE_SIZE;
    const length = g.rng.chance(0.05) ? m.length + PAGE_SIZE : g.rng.range(1, m.length / PAGE_SIZE) * PAGE_SIZE;
    const body = { iova, hva: ref(m.v, 'hva'), length, read: true, write: g.rng.chance(0.7) };
    return op('host/map', this.id, [this.host('POST', this.path(i, 'map'), body)], ([a]) => {
      if (ok(a)) i.maps.push({ iova, length });
    });
  }

  private unmap(g: GenContext): FuzzOp {
    const i = g.rng.pick(this.ioasids.filter((x) => x.maps.length));
    const m = g.rng.pick(i.maps);
    const body = g.rng.chance(0.2) ? { all: true } : g.rng.chance(0.1) ? { iova: m.iova, length: PAGE_SIZE * 1000 } : { iova: m.iova, length: m.length };
    return op('host/unmap', this.id, [this.host('POST', this.path(i, 'unmap'), body)], ([a]) => {
      if (!ok(a)) return;
      i.maps = 'all' in body ? [] : i.maps.filter((x) => x !== m);
    });
  }

  private onIoasid(g: GenContext, name: string, method: string, tail: string | null, body: unknown): FuzzOp {
    const i = g.rng.pick(this.ioasids);
    return op(name, this.id, [this.host(method, this.path(i, tail), body)]);
  }

  private destroy(g: GenContext): FuzzOp {
    const i = g.rng.pick(this.ioasids);
    return op('host/destroy', this.id, [this.host('DELETE', this.path(i, null), null)], ([a]) => {
      if (ok(a)) this.ioasids = this.ioasids.filter((x) => x !== i);
    });
  }

  private faultQueue(g: GenContext): FuzzOp {
    const q = this.queues.length ? g.rng.pick(this.queues) : null;
    const fd = q?.fd ?? g.rng.pick(this.fds);
    const base = `/v1/ioasid/${ref(fd, 'fd')}/fault-queues`;
    const what = g.rng.weighted<string>([[q ? 0 : 4, 'alloc'], [q ? 4 : 0, 'read'], [q?.read ? 4 : 0, 'respond'], [q ? 1 : 0, 'destroy'], [q ? 0 : 1, 'alloc']]) as string;
    const v = g.fresh();
    if (what === 'alloc') return op('host/fault-queue-alloc', this.id, [this.host('POST', base, {}, v)], ([a]) => void (ok(a) && this.queues.push({ v, fd })));
    const qq = q as { v: string; fd: string; read?: string };
    const at = `${base}/${ref(qq.v, 'faultQueue')}`;
    if (what === 'read') return op('host/fault-read', this.id, [this.host('GET', `${at}/groups`, null, v)], ([a]) => void (ok(a) && (qq.read = v)));
    if (what === 'respond') {
      const cookie = g.rng.chance(0.8) ? ref(qq.read as string, '0.cookie') : g.rng.int(50);
      return op('host/fault-respond', this.id, [this.host('POST', `${at}/response`, { cookie, code: g.rng.pick(['success', 'invalid']) })]);
    }
    return op('host/fault-queue-destroy', this.id, [this.host('DELETE', at, null)], ([a]) => {
      if (ok(a)) this.queues = this.queues.filter((x) => x !== q);
    });
  }

  private openDevice(g: GenContext): FuzzOp {
    const bdf = g.rng.pick(g.devices).bdf;
    const v = g.fresh();
    return op('host/vfio-open', this.id, [this.host('POST', `/v1/vfio/devices/${bdf}/open`, {}, v)], ([a]) => void (ok(a) && this.devices.push({ v, bdf })));
  }

  private allow(g: GenContext): FuzzOp {
    const d = g.rng.pick(this.devices);
    const i = g.rng.pick(this.ioasids.filter((x) => x.kind !== 'none'));
    const mode = g.rng.chance(0.7) ? 'pasid' : 'rid';
    return op(`host/allow-${mode}`, this.id, [this.host('POST', `/v1/vfio/${ref(d.v, 'fd')}/allow-ioasid`, { ioasidFd: ref(i.fd, 'fd'), ioasid: ref(i.v, 'ioasid'), mode })], ([a]) => {
      if (ok(a)) i.allowed = true;
    });
  }

  private disallow(g: GenContext): FuzzOp {
    const d = g.rng.pick(this.devices);
    const i = g.rng.pick(this.ioasids);
    return op('host/disallow', this.id, [this.host('POST', `/v1/vfio/${ref(d.v, 'fd')}/disallow-ioasid`, { ioasidFd: ref(i.fd, 'fd'), ioasid: ref(i.v, 'ioasid') })], ([a]) => {
      if (ok(a)) i.allowed = false;
    });
  }

  private kvm(g: GenContext): FuzzOp {
    const k = g.rng.pick(this.kvms);
    const at = `/v1/kvm/${ref(k.v, 'fd')}`;
    const allowed = this.ioasids.filter((x) => x.allowed);
    const i = allowed.length && g.rng.chance(0.8) ? g.rng.pick(allowed) : this.ioasids.length ? g.rng.pick(this.ioasids) : null;
    const vpasid = g.rng.chance(0.9) ? g.rng.range(1, 8) : g.rng.pick([0, 2 ** 20, -1]);
    const unmapped = k.mapped.length && g.rng.chance(0.7) ? g.rng.pick(k.mapped) : vpasid;
    const m = this.mmaps.length ? g.rng.pick(this.mmaps) : null;
    const what = g.rng.weighted<string>([[m ? (k.slot ? 1 : 4) : 0, 'memslot'], [k.slot ? 3 : m ? 1 : 0, 'write'], [k.vcpus < 2 ? 2 : 0, 'vcpu'], [k.translation ? 1 : 3, 'translation'], [i ? (k.translation ? 5 : 1) : 0, 'map'], [k.mapped.length ? 4 : 1, 'unmap'], [k.vcpus ? 3 : 0, 'wrmsr'], [k.vcpus ? 2 : 0, 'enqcmd']]) as string;
    if (what === 'memslot') {
      const size = (m as Mapping).length;
      return op('host/kvm-memslot', this.id, [this.host('POST', `${at}/memslots`, { gpa: 0, size, hva: ref((m as Mapping).v, 'hva') })], ([a]) => void (ok(a) && (k.slot ||= size)));
    }
    if (what === 'write') return this.writeGuest(g, at, k.slot || (m as Mapping).length);
    if (what === 'vcpu') return op('host/kvm-vcpu', this.id, [this.host('POST', `${at}/vcpus`, {})], ([a]) => void (ok(a) && k.vcpus++));
    if (what === 'translation') {
      const enabled = g.rng.chance(0.8);
      return op('host/kvm-pasid-translation', this.id, [this.host('POST', `${at}/pasid-translation`, { enabled })], ([a]) => void (ok(a) && (k.translation = enabled)));
    }
    if (what === 'map') {
      const body = { vpasid, ioasidFd: ref((i as IoasidRef).fd, 'fd'), ioasid: ref((i as IoasidRef).v, 'ioasid') };
      return op('host/kvm-map-pasid', this.id, [this.host('POST', `${at}/map-pasid`, body)], ([a]) => void (ok(a) && k.mapped.push(vpasid)));
    }
    if (what === 'unmap') {
      return op('host/kvm-unmap-pasid', this.id, [this.host('POST', `${at}/unmap-pasid`, { vpasid: unmapped })], () => void (k.mapped = k.mapped.filter((v) => v !== unmapped)));
    }
    if (what === 'wrmsr') return op('host/kvm-wrmsr', this.id, [this.host('POST', `${at}/vcpus/0/wrmsr`, { msr: 'IA32_PASID', value: (IA32_PASID_VALID | Math.max(0, vpasid)) >>> 0 })]);
    const dev = this.devices.length ? ref(g.rng.pick(this.devices).v, 'fd') : 3;
    return op('host/kvm-enqcmd', this.id, [this.host('POST', `${at}/vcpus/0/enqcmd`, { deviceFd: dev, descriptor: { op: 'noop', completion: g.rng.int(64) * 32 } })]);
  }

  /**
   * KVM's guest-memory write (what a VMM does through its own mapping of guest RAM): this process's canary inside
   * the VM's memslot at GPA 0 (`size` bytes; with no slot yet, a mapping's length: EFAULT), now and then one that
   * runs a page past its end or starts beyond it (EFAULT, nothing written).
   */
  private writeGuest(g: GenContext, at: string, size: number): FuzzOp {
    const gpa = g.rng.chance(0.05) ? g.rng.pick([size, 2 ** 32]) : g.rng.int(size / PAGE_SIZE) * PAGE_SIZE;
    const length = g.rng.chance(0.1) && gpa < size ? size - gpa + PAGE_SIZE : g.rng.range(1, PAGE_SIZE);
    const data = canary({ kind: 'host', pid: this.pidOf(g) }, length).toString('base64');
    return op('host/kvm-write-guest', this.id, [this.host('PUT', `${at}/memory`, { gpa, data })]);
  }

  /** Host SVA: IA32_PASID = an mm-bound ioasid of this process, then ENQCMD on an open device (page requests answered by the kernel). */
  private enqcmd(g: GenContext): FuzzOp {
    const i = g.rng.pick(this.ioasids.filter((x) => x.kind === 'mm'));
    const d = g.rng.pick(this.devices);
    const src = g.rng.pick(this.mmaps);
    const dst = g.rng.pick(this.mmaps);
    const length = g.rng.range(1, Math.min(src.length, dst.length) / PAGE_SIZE) * PAGE_SIZE;
    const opName = g.rng.pick(['memmove', 'fill', 'compare', 'noop'] as const);
    const descriptor = { op: opName, ...(opName === 'noop' ? {} : { src: ref(src.v, 'hva'), dst: ref(dst.v, 'hva'), length }), ...(opName === 'fill' ? { pattern: 0x3c } : {}), completion: ref(dst.v, 'hva'), blockOnFault: g.rng.chance(0.6) };
    if (opName === 'fill') delete (descriptor as { src?: unknown }).src;
    const pid = ref(this.proc as string, 'pid');
    // Now and then the supervisor form, ENQCMDS, which a user process may not issue.
    const insn = g.rng.chance(0.1) ? 'enqcmds' : 'enqcmd';
    return op(`host/${insn}-${opName}`, this.id, [
      this.host('POST', `/v1/processes/${pid}/wrmsr`, { msr: 'IA32_PASID', value: (IA32_PASID_VALID | ((g.vars.get(i.v) as { ioasid?: number } | undefined)?.ioasid ?? 0)) >>> 0 }),
      this.host('POST', `/v1/processes/${pid}/${insn}`, { deviceFd: ref(d.v, 'fd'), descriptor }),
    ]);
  }

  /** Reads that journal nothing: its own process, the device list, an fd's ioasids, its KVM VM's memory. */
  private look(g: GenContext): FuzzOp {
    const fds = this.fds.map((v) => `/v1/ioasid/${ref(v, 'fd')}/ioasids`);
    const path = g.rng.pick([`/v1/processes/${ref(this.proc as string, 'pid')}`, '/v1/vfio/devices', ...fds, ...this.kvms.map((k) => `/v1/kvm/${ref(k.v, 'fd')}/memory?gpa=0&length=64`)]);
    return op(`host/look-${path.split('/')[2]}`, this.id, [this.host('GET', path, null)]);
  }

  private close(g: GenContext): FuzzOp {
    const all = [...this.fds.map((v) => ({ v, kind: 'ioasid' })), ...this.devices.map((d) => ({ v: d.v, kind: 'device' })), ...this.kvms.map((k) => ({ v: k.v, kind: 'kvm' }))];
    const f = g.rng.pick(all);
    return op(`host/close-${f.kind}`, this.id, [this.host('DELETE', `/v1/fds/${ref(f.v, 'fd')}`, null)], ([a]) => {
      if (!ok(a)) return;
      this.fds = this.fds.filter((x) => x !== f.v);
      this.ioasids = this.ioasids.filter((i) => i.fd !== f.v);
      this.queues = this.queues.filter((q) => q.fd !== f.v);
      this.devices = this.devices.filter((d) => d.v !== f.v);
      this.kvms = this.kvms.filter((k) => k.v !== f.v);
    });
  }

  private exit(): FuzzOp {
    return op('host/exit', this.id, [this.host('DELETE', `/v1/processes/${ref(this.proc as string, 'pid')}`, null)], ([a]) => void (ok(a) && this.reset()));
  }

  /** Someone else's fds and ids with this process's token, numbers it never got, another pid, a token nobody has. */
  private hostile(g: GenContext): FuzzOp {
    const others = g.tenants.filter((t) => t !== this).flatMap((t) => t.exposed());
    const fd = others.length && g.rng.chance(0.6) ? g.rng.pick(others) : g.rng.range(0, 40);
    const which = g.rng.int(8);
    if (which === 0) return op('hostile/foreign-fd-alloc', this.id, [this.host('POST', `/v1/ioasid/${fd}/ioasids`, {})]);
    if (which === 1) return op('hostile/foreign-fd-close', this.id, [this.host('DELETE', `/v1/fds/${fd}`, null)]);
    if (which === 2) return op('hostile/foreign-fd-allow', this.id, [this.host('POST', `/v1/vfio/${fd}/allow-ioasid`, { ioasidFd: fd, ioasid: g.rng.range(1, 40), mode: 'pasid' })]);
    if (which === 3) return op('hostile/other-pid', this.id, [this.host('POST', `/v1/processes/${g.rng.range(100, 140)}/mmap`, { length: PAGE_SIZE })]);
    if (which === 4) return op('hostile/garbage-token', this.id, [this.host('POST', '/v1/ioasid', {}, undefined, 'garbage')]);
    if (which === 5) return op('hostile/admin-route', this.id, [this.host('GET', '/v1/hw/pasids', null)]);
    if (which === 6) return op('hostile/foreign-kvm-write', this.id, [this.host('PUT', `/v1/kvm/${fd}/memory`, { gpa: 0, data: canary({ kind: 'host', pid: this.pidOf(g) }, 64).toString('base64') })]);
    return op('hostile/foreign-map-pasid', this.id, [this.host('POST', `/v1/kvm/${fd}/map-pasid`, { vpasid: 1, ioasidFd: fd, ioasid: g.rng.range(1, 40) })]);
  }
}
