// DESIGN §11, the PASID pool: no PASID is both free and held; free + allocated + parked is the whole space; a
// parked PASID is never handed out; a freed PASID has no route, KVM entry or IOTLB entry anywhere. The admin
// views (GET /v1/hw/pasids, /v1/hw/limits, /v1/hw/iommu/page-requests) tell the same as the kernel state.
import { PAGE_SIZE } from '@app/shared/x86/x86.constants';
import { check, type Check, type CheckInput } from './types';

const GROUP = 'pasid-pool';

/** Every PASID something refers to (routes, KVM entries, nested parents, pending page requests), with who. */
function referenced({ now }: CheckInput): Array<{ ppasid: number; by: string }> {
  const s = now.host;
  const out: Array<{ ppasid: number; by: string }> = [];
  for (const r of s.routes) {
    out.push({ ppasid: r.ioasid, by: `the route ${r.bdf}/${r.ppasid ?? 'rid'}` });
    if (r.ppasid !== null) out.push({ ppasid: r.ppasid, by: `the PASID route ${r.bdf}/${r.ppasid}` });
  }
  for (const vm of s.vms) for (const m of vm.pasids) out.push({ ppasid: m.ppasid, by: `KVM vm fd ${vm.pid}/${vm.fd} vPASID ${m.vpasid}` });
  for (const i of s.ioasids) if (i.parent !== null) out.push({ ppasid: i.parent, by: `nested ioasid ${i.id} (its parent)` });
  for (const g of s.pageRequests) out.push({ ppasid: g.ppasid, by: `pending page request group ${g.seq}` });
  return out;
}

export const PASID_POOL_CHECKS: Check[] = [
  check({
    name: 'pool-sums-to-space',
    group: GROUP,
    rule: 'pool counts (free + allocated + parked) equal the pool size',
    run: ({ now }) => {
      const out: string[] = [];
      for (const [what, p] of [['kernel state', now.host.pool], ['GET /v1/hw/pasids', now.views.pasids]] as const) {
        const sum = p.free + p.allocated + p.parked + 1;
        if (sum !== now.pasidSpace) out.push(`${what}: free ${p.free} + allocated ${p.allocated} + parked ${p.parked} + PASID 0 = ${sum}, not ${now.pasidSpace}`);
      }
      return out;
    },
  }),
  check({
    name: 'pool-counts-ioasids',
    group: GROUP,
    rule: 'the pool counts what exists: allocated = ioasids not destroyed, parked = destroyed ones still held',
    run: ({ now }) => {
      const live = now.host.ioasids.filter((i) => i.state !== 'destroyed').length;
      const parked = now.host.ioasids.length - live;
      const p = now.host.pool;
      return p.allocated === live && p.parked === parked ? [] : [`the pool says ${p.allocated} allocated + ${p.parked} parked, the ioasids are ${live} + ${parked}`];
    },
  }),
  check({
    name: 'no-pasid-free-and-held',
    group: GROUP,
    rule: 'no PASID is both free and held; a freed PASID has no route or KVM entry anywhere',
    run: (input) => {
      const exists = new Set(input.now.host.ioasids.map((i) => i.id));
      return referenced(input)
        .filter((r) => !exists.has(r.ppasid))
        .map((r) => `PASID ${r.ppasid} is free (no ioasid) but ${r.by} refers to it`);
    },
  }),
  check({
    name: 'freed-pasid-not-cached',
    group: GROUP,
    rule: 'a freed PASID has no IOTLB entry anywhere (a destroyed page table was flushed)',
    inProcessOnly: true,
    run: ({ now, stack }) => {
      if (!stack) return [];
      const live = new Set(now.host.ioasids.filter((i) => i.pgtbl && !i.pgtbl.destroyed).map((i) => i.pgtbl?.id));
      return stack.host.kernel.iommu.iotlb
        .tables()
        .filter((id) => !live.has(id))
        .map((id) => `the IOTLB caches translations of page table ${id}, which no live ioasid has`);
    },
  }),
  check({
    name: 'parked-never-handed-out',
    group: GROUP,
    rule: 'a parked (or allocated) PASID is never handed out again',
    run: ({ before, rows, fold }) => {
      const out = fold.problems.filter((p) => p.check === 'parked-never-handed-out').map((p) => p.message);
      if (!before) return out;
      const held = new Map(before.host.ioasids.map((i) => [i.id, i.state]));
      for (const r of rows.get('host-kernel') ?? []) {
        // Rows come in commit order: a PASID freed earlier in the same step may be handed out again.
        if (r.operation === 'event.ioasid-freed') held.delete((r.args as { ppasid?: number } | null)?.ppasid ?? -1);
        if (r.operation === 'kernel.boot') held.clear();
        const got = (r.result as { ioasid?: number } | null)?.ioasid;
        if (r.operation === 'ioasid.alloc' && r.errno === null && typeof got === 'number' && held.has(got)) {
          out.push(`ioasid.alloc (seq ${r.seq}) handed out PASID ${got}, which was ${held.get(got) === 'destroyed' ? 'parked' : 'allocated'}`);
        }
      }
      return out;
    },
  }),
  check({
    name: 'admin-views-agree',
    group: GROUP,
    rule: 'the admin views tell what the kernel state tells (pool, page requests, per-process usage)',
    run: ({ now }) => {
      const out: string[] = [];
      const s = now.host;
      const v = now.views;
      if (JSON.stringify(v.pasids) !== JSON.stringify(s.pool)) out.push(`GET /v1/hw/pasids says ${JSON.stringify(v.pasids)}, the kernel state ${JSON.stringify(s.pool)}`);
      const seqs = (g: Array<{ seq: number }>): string => g.map((x) => x.seq).join(',');
      if (seqs(v.pageRequests.groups) !== seqs(s.pageRequests)) out.push(`GET /v1/hw/iommu/page-requests lists groups [${seqs(v.pageRequests.groups)}], the kernel state [${seqs(s.pageRequests)}]`);
      if (v.pageRequests.pending !== v.pageRequests.groups.length) out.push(`the page request queue says ${v.pageRequests.pending} pending but lists ${v.pageRequests.groups.length} groups`);
      const held = v.pageRequests.groups.reduce((n, g) => n + g.requests, 0);
      if (v.pageRequests.held !== held) out.push(`the page request queue holds ${v.pageRequests.held} requests by its count, ${held} by its groups`);
      if (v.limits.host.files !== s.openFiles) out.push(`GET /v1/hw/limits counts ${v.limits.host.files} open files, the kernel state ${s.openFiles}`);
      const running = new Map(s.processes.filter((p) => p.state === 'running').map((p) => [p.pid, p]));
      if (v.limits.processes.length !== running.size) out.push(`GET /v1/hw/limits lists ${v.limits.processes.length} running processes, the kernel state ${running.size}`);
      for (const p of v.limits.processes) {
        const k = running.get(p.pid);
        if (!k) {
          out.push(`GET /v1/hw/limits lists process ${p.pid}, which is not running`);
          continue;
        }
        const want = { pasids: k.usage.pasids, fds: k.usage.fds, pinnedBytes: k.usage.pinnedPages * PAGE_SIZE, residentBytes: k.residentPages * PAGE_SIZE };
        const got = { pasids: p.usage.pasids, fds: p.usage.fds, pinnedBytes: p.usage.pinnedBytes, residentBytes: p.usage.residentBytes };
        if (JSON.stringify(got) !== JSON.stringify(want)) out.push(`process ${p.pid}: GET /v1/hw/limits says ${JSON.stringify(got)}, the kernel state ${JSON.stringify(want)}`);
        const owned = s.ioasids.filter((i) => i.owner.pid === p.pid).length;
        if (p.usage.pasids !== owned) out.push(`process ${p.pid} is charged ${p.usage.pasids} PASIDs but owns ${owned} ioasids (allocated or parked)`);
        if (p.usage.fds !== k.fds.length) out.push(`process ${p.pid} is charged ${p.usage.fds} fds but has ${k.fds.length} open`);
      }
      return out;
    },
  }),
];
