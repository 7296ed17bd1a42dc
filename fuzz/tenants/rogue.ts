// A hostile guest kernel: a VM with no guest OS, driven raw through the VM's own token (DESIGN §3, §3b). It writes
// its scalable-mode PASID directory and tables and x86-64 first-level page tables into its RAM itself — often
// wrong on purpose: a PGTT this vIOMMU refuses, a non-4-level FLPM, a first-level pointer outside RAM or at
// garbage, PTEs to GPAs it does not have, reserved bits, large pages, not-present entries, tables that map the
// PASID tables themselves, 64 bytes of noise — then invalidates, loads IA32_PASID, ENQCMDs through it (blocking on
// faults: its page requests wait for it, and it mostly never answers), reads back, and answers page requests with
// whatever it likes.
import { IA32_PASID_VALID } from '@app/shared/x86/msr.constants';
import { encodePte, pageTableIndexes } from '@app/shared/x86/pte';
import { PAGE_SIZE } from '@app/shared/x86/x86.constants';
import { canary } from '../../replay/invariants/canary';
import { type FuzzOp, type GenContext, op, ref, step } from '../op';
import { VmLife } from './vm-common';

/** Where the rogue kernel keeps things in its RAM. */
const DIR = (n: number): number => 0x10000 + n * PAGE_SIZE;
const TABLE = (n: number): number => 0x20000 + n * PAGE_SIZE;
const ROOT = (k: number): number => 0x40000 + k * 4 * PAGE_SIZE;
const DATA = (k: number): number => 0x100000 + k * 16 * PAGE_SIZE;
/** Every table maps 16 pages at this GVA. */
const GVA = 0x400000;
const TABLES = 6;

export class RogueTenant {
  readonly kind = 'rogue' as const;
  private readonly life: VmLife;
  /** vPASIDs whose entry this kernel wrote, with the table (k) their FLPTR names, or null (pass-through/garbage). */
  private entries = new Map<number, number | null>();
  private lastPrs: string | null = null;

  constructor(readonly id: string) {
    this.life = new VmLife(id, () => this.forget());
  }

  private forget(): void {
    this.entries = new Map();
    this.lastPrs = null;
  }

  vmmLost(): void {
    this.forget();
  }

  exposed(): string[] {
    return [];
  }

  propose(g: GenContext): FuzzOp | null {
    const vm = this.life.view(g);
    if (!this.life.vm) return g.snap.vmm ? this.life.create(g, 'rogue') : null;
    if (!vm) return null;
    if (vm.state === 'stopped') {
      this.forget();
      return g.rng.chance(0.3) ? this.life.remove() : this.life.start();
    }
    if (vm.state !== 'running' || this.life.devices.length === 0) return g.rng.chance(0.05) ? this.life.remove() : null;
    const id = this.life.id(g) as number;
    const choice = g.rng.weighted<() => FuzzOp>([
      [3, () => this.context(g)],
      [4, () => this.table(g)],
      [3, () => this.data(g, id)],
      [6, () => this.entry(g)],
      [1, () => this.garbageEntry(g)],
      [7, () => this.invalidate(g)],
      [this.entries.size ? 8 : 1, () => this.enqcmd(g)],
      [3, () => this.readBack(g)],
      [2, () => this.pageRequests(g)],
      [1, () => op('rogue/faults', this.id, [this.life.vmm('GET', '/viommu/faults', null)])],
      [0.4, () => this.life.remove()],
    ]);
    return choice ? choice() : null;
  }

  private vrid(g: GenContext): number {
    return g.rng.chance(0.95) ? g.rng.pick(this.life.vrids()) : g.rng.pick([0, 0x99, 0x18]);
  }

  private context(g: GenContext): FuzzOp {
    const vrid = this.vrid(g);
    const n = Math.max(0, this.life.vrids().indexOf(vrid));
    const gpa = g.rng.weighted([[8, DIR(n)], [1, DIR(n) + 8], [1, g.vmMemoryMiB << 20], [1, DIR(n + 3)]]) as number;
    return op('rogue/set-context', this.id, [this.life.vmm('PUT', `/viommu/context/${vrid}`, { pasidDirGpa: gpa })]);
  }

  /** A 4-level first-level table at ROOT(k) mapping GVA..GVA+16 pages, honest or not. */
  private table(g: GenContext): FuzzOp {
    const k = g.rng.int(TABLES);
    const root = ROOT(k);
    const buf = Buffer.alloc(4 * PAGE_SIZE);
    const [i4, i3, i2, i1] = pageTableIndexes(GVA);
    const link = { present: true, writable: true, user: true };
    const kind = g.rng.weighted([[6, 'honest'], [1, 'outside-ram'], [1, 'reserved'], [1, 'large'], [1, 'not-present'], [1, 'self-map'], [1, 'foreign-gpa']]) as string;
    buf.writeBigUInt64LE(encodePte({ ...link, address: root + PAGE_SIZE }), i4 * 8);
    buf.writeBigUInt64LE(encodePte({ ...link, address: root + 2 * PAGE_SIZE, large: kind === 'large' }), PAGE_SIZE + i3 * 8);
    buf.writeBigUInt64LE(encodePte({ ...link, address: root + 3 * PAGE_SIZE }), 2 * PAGE_SIZE + i2 * 8);
    for (let j = 0; j < 16; j++) {
      let address = DATA(k) + j * PAGE_SIZE;
      if (kind === 'outside-ram' && j % 3 === 0) address = (g.vmMemoryMiB << 20) + j * PAGE_SIZE;
      if (kind === 'self-map' && j % 4 === 0) address = g.rng.pick([DIR(0), TABLE(0), root]);
      if (kind === 'foreign-gpa' && j % 2 === 0) address = 0x7f000000 + j * PAGE_SIZE;
      let pte = encodePte({ ...link, present: !(kind === 'not-present' && j % 2 === 1), address });
      if (kind === 'reserved' && j % 5 === 0) pte |= 1n << 50n;
      buf.writeBigUInt64LE(pte, 3 * PAGE_SIZE + (i1 + j) * 8);
    }
    return op(`rogue/page-table-${kind}`, this.id, [this.life.vmm('PUT', '/memory', { gpa: root, data: buf.toString('base64') })]);
  }

  private data(g: GenContext, vm: number): FuzzOp {
    const k = g.rng.int(TABLES);
    const pages = g.rng.range(1, 4);
    return op('rogue/write-data', this.id, [this.life.vmm('PUT', '/memory', { gpa: DATA(k) + g.rng.int(12) * PAGE_SIZE, data: canary({ kind: 'vm', vm }, pages * PAGE_SIZE).toString('base64') })]);
  }

  private entry(g: GenContext): FuzzOp {
    const vrid = g.rng.pick(this.life.vrids());
    const n = this.life.vrids().indexOf(vrid);
    const vpasid = g.rng.chance(0.9) ? g.rng.range(1, 8) : g.rng.pick([0, 63, 64, 0xfffff]);
    const k = g.rng.int(TABLES);
    const kind = g.rng.weighted([[6, 'first-level'], [3, 'pass-through'], [1, 'second-level'], [1, 'nested'], [1, 'bad-flpm'], [1, 'flptr-outside-ram'], [1, 'flptr-at-data'], [1, 'not-present']]) as string;
    const pgtt = { 'pass-through': 4, 'second-level': 2, nested: 3 }[kind] ?? 1;
    const flptr = kind === 'flptr-outside-ram' ? (g.vmMemoryMiB << 20) + PAGE_SIZE : kind === 'flptr-at-data' ? DATA(k) : kind === 'pass-through' ? 0 : ROOT(k);
    const spec = { vm: this.life.idRef, dir: DIR(n), table: TABLE(n), vpasid, pgtt, flpm: kind === 'bad-flpm' ? 1 : 0, flptr, present: kind !== 'not-present' };
    return op(`rogue/pasid-entry-${kind}`, this.id, [step('pasid-entry', spec)], () => {
      this.entries.set(vpasid, kind === 'first-level' ? k : null);
    });
  }

  private garbageEntry(g: GenContext): FuzzOp {
    const n = g.rng.int(this.life.vrids().length);
    const vpasid = g.rng.range(1, 8);
    const noise = Buffer.alloc(64);
    for (let i = 0; i < 64; i++) noise[i] = g.rng.int(256);
    noise[0] |= 1;
    return op('rogue/pasid-entry-noise', this.id, [this.life.vmm('PUT', '/memory', { gpa: TABLE(n) + (vpasid & 0x3f) * 64, data: noise.toString('base64') })], () => this.entries.set(vpasid, null));
  }

  private invalidate(g: GenContext): FuzzOp {
    const known = [...this.entries.keys()];
    const vpasid = known.length && g.rng.chance(0.8) ? g.rng.pick(known) : g.rng.range(0, 9);
    const kind = g.rng.weighted([[7, 'one'], [2, 'global'], [2, 'piotlb'], [1, 'malformed']]) as string;
    const descriptors =
      kind === 'one'
        ? [{ type: 'pasid-cache', vpasid }, { type: 'wait' }]
        : kind === 'global'
          ? [{ type: 'pasid-cache' }, { type: 'wait' }]
          : kind === 'piotlb'
            ? [{ type: 'piotlb', vpasid, ...(g.rng.chance(0.5) ? { addr: GVA, npages: 4 } : {}) }, { type: 'wait' }]
            : [{ type: 'bogus', vpasid }];
    return op(`rogue/invalidate-${kind}`, this.id, [this.life.vmm('POST', '/viommu/invalidate', { descriptors })]);
  }

  /** IA32_PASID = valid | vPASID on a vCPU, then an ENQCMD through the kernel's own table (or garbage addresses). */
  private enqcmd(g: GenContext): FuzzOp {
    const known = [...this.entries.keys()];
    const vpasid = known.length ? g.rng.pick(known) : g.rng.range(1, 8);
    const vcpu = g.rng.chance(0.9) ? 0 : g.rng.pick([1, 7]);
    const msr = g.rng.chance(0.95) ? (IA32_PASID_VALID | vpasid) >>> 0 : g.rng.pick([0, 0x40000001, vpasid]);
    const honest = g.rng.chance(0.75);
    const page = (j: number): number => (honest ? GVA + j * PAGE_SIZE : g.rng.pick([0, GVA + 64 * PAGE_SIZE, 0x7ffff000, GVA + j * PAGE_SIZE]));
    const opName = g.rng.weighted([[5, 'memmove'], [2, 'fill'], [2, 'compare'], [1, 'noop']] as const) as string;
    const length = g.rng.range(1, 4) * PAGE_SIZE;
    const descriptor = {
      op: opName,
      ...(opName === 'memmove' || opName === 'compare' ? { src: page(g.rng.int(4)) } : {}),
      ...(opName === 'noop' ? {} : { dst: page(4 + g.rng.int(4)), length }),
      ...(opName === 'fill' ? { pattern: 0x77 } : {}),
      completion: page(15) + g.rng.int(64) * 32,
      blockOnFault: g.rng.chance(0.5),
    };
    const vrid = this.vrid(g);
    const steps = [this.life.vmm('POST', `/vcpus/${vcpu}/wrmsr`, { msr: 'IA32_PASID', value: msr })];
    if (g.rng.chance(0.15)) steps.push(this.life.vmm('POST', `/vcpus/${vcpu}/enqcmds`, { vrid, descriptor, pasid: vpasid, privileged: g.rng.chance(0.5) }));
    else steps.push(this.life.vmm('POST', `/vcpus/${vcpu}/enqcmd`, { vrid, descriptor }));
    return op(`rogue/enqcmd-${opName}${descriptor.blockOnFault ? '-blocking' : ''}`, this.id, steps);
  }

  private readBack(g: GenContext): FuzzOp {
    const gpa = g.rng.pick([DATA(g.rng.int(TABLES)), DATA(g.rng.int(TABLES)) + 15 * PAGE_SIZE, TABLE(0), g.rng.int(g.vmMemoryMiB * 256) * PAGE_SIZE]);
    return op('rogue/read', this.id, [this.life.vmm('GET', `/memory?gpa=${gpa}&length=${2 * PAGE_SIZE}`, null)]);
  }

  private pageRequests(g: GenContext): FuzzOp {
    if (!this.lastPrs || g.rng.chance(0.5)) {
      const v = g.fresh();
      return op('rogue/page-requests', this.id, [this.life.vmm('GET', '/viommu/page-requests', null, v)], () => void (this.lastPrs = v));
    }
    const p = this.lastPrs;
    const honest = g.rng.chance(0.7);
    const body = honest ? { vrid: ref(p, '0.vrid'), vpasid: ref(p, '0.vpasid'), grpid: ref(p, '0.grpid'), code: g.rng.pick(['success', 'invalid', 'failure']) } : { vrid: this.vrid(g), vpasid: g.rng.range(0, 9), grpid: g.rng.int(512), code: g.rng.pick(['success', 'bogus']) };
    return op(`rogue/page-response${honest ? '' : '-forged'}`, this.id, [this.life.vmm('POST', '/viommu/page-response', body)]);
  }
}
