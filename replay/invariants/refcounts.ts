// DESIGN §11: every ioasid's refcount equals the number of its holders — and the holders are real: each device
// holder is a route the IOMMU has, each KVM holder an entry of a KVM vPASID table, each child a nested ioasid
// sitting on it, and the owning fd (until DESTROY or close) an open ioasid fd of the owner. Nothing refers to an
// ioasid without holding it.
import type { KernelState } from '../../apps/host-kernel/src/kernel-state';
import { check, type Check } from './types';

const GROUP = 'refcounts';
type Ioasid = KernelState['ioasids'][number];

const sorted = (xs: string[]): string => [...xs].sort().join(' ');

function routesOf(s: KernelState, i: Ioasid): string[] {
  return s.routes.filter((r) => r.ioasid === i.id).map((r) => `${r.bdf}/${r.ppasid === null ? 'rid' : 'pasid'}`);
}

function kvmEntriesOf(s: KernelState, i: Ioasid): string[] {
  return s.vms.filter((v) => v.pid === i.owner.pid).flatMap((v) => v.pasids.filter((m) => m.ppasid === i.id).map((m) => `${v.fd}:${m.vpasid}`));
}

export const REFCOUNT_CHECKS: Check[] = [
  check({
    name: 'refs-equal-holders',
    group: GROUP,
    rule: "every ioasid's refcount equals the number of its holders (the owning fd until DESTROY, devices, KVM entries, children)",
    run: ({ now }) =>
      now.host.ioasids
        .filter((i) => i.refs !== (i.state === 'destroyed' ? 0 : 1) + i.holders.devices.length + i.holders.kvm.length + i.holders.children.length)
        .map((i) => `ioasid ${i.id} (${i.state}) has refcount ${i.refs} but holders ${JSON.stringify(i.holders)}`),
  }),
  check({
    name: 'device-holders-are-routes',
    group: GROUP,
    rule: 'a device holds an ioasid exactly while the IOMMU routes the device (RID, or RID+PASID = the ioasid) to its table',
    run: ({ now }) => {
      const s = now.host;
      const out: string[] = [];
      for (const i of s.ioasids) {
        const routes = routesOf(s, i);
        if (sorted(routes) !== sorted(i.holders.devices)) out.push(`ioasid ${i.id}: device holders [${sorted(i.holders.devices)}] but routes [${sorted(routes)}]`);
      }
      for (const r of s.routes) {
        if (r.ppasid !== null && r.ppasid !== r.ioasid) out.push(`the route ${r.bdf}/PASID ${r.ppasid} leads to ioasid ${r.ioasid}: a PASID route is tagged with its ioasid's PASID`);
        const i = s.ioasids.find((x) => x.id === r.ioasid);
        if (i && i.pgtbl?.id !== r.pgtblId) out.push(`the route ${r.bdf}/${r.ppasid ?? 'rid'} uses page table ${r.pgtblId}, ioasid ${i.id} has ${i.pgtbl?.id ?? 'none'}`);
        if (i?.state === 'destroyed' && !r.blocked) out.push(`the route ${r.bdf}/${r.ppasid ?? 'rid'} to destroyed ioasid ${i.id} is not blocked (DESTROY blocks every attached device at once)`);
      }
      return out;
    },
  }),
  check({
    name: 'kvm-holders-are-entries',
    group: GROUP,
    rule: "KVM holds an ioasid exactly while a vPASID of one of the owner's KVM VMs maps to it; an entry of a destroyed one does not translate",
    run: ({ now }) => {
      const s = now.host;
      const out: string[] = [];
      for (const i of s.ioasids) {
        const entries = kvmEntriesOf(s, i);
        const holders = i.holders.kvm.map((k) => `${k.vmFd}:${k.vpasid}`);
        if (sorted(entries) !== sorted(holders)) out.push(`ioasid ${i.id}: KVM holders [${sorted(holders)}] but vPASID table entries [${sorted(entries)}]`);
      }
      for (const vm of s.vms) {
        for (const m of vm.pasids) {
          const i = s.ioasids.find((x) => x.id === m.ppasid);
          if (i && i.owner.pid !== vm.pid) out.push(`KVM vm ${vm.pid}/${vm.fd} maps vPASID ${m.vpasid} to ioasid ${i.id} of process ${i.owner.pid}, another process`);
          if (i?.state === 'destroyed' && m.translates) out.push(`KVM vm ${vm.pid}/${vm.fd} still translates vPASID ${m.vpasid} to destroyed ioasid ${i.id}`);
        }
      }
      return out;
    },
  }),
  check({
    name: 'child-holders-are-nested',
    group: GROUP,
    rule: 'a nested ioasid pins its parent: the parent lists exactly the nested ioasids sitting on it, and it is an iova table',
    run: ({ now }) => {
      const s = now.host;
      const out: string[] = [];
      for (const i of s.ioasids) {
        const children = s.ioasids.filter((c) => c.parent === i.id).map((c) => String(c.id));
        if (sorted(children) !== sorted(i.holders.children.map(String))) out.push(`ioasid ${i.id}: child holders [${i.holders.children.join(' ')}] but nested ioasids on it [${children.join(' ')}]`);
        if (i.parent !== null) {
          const p = s.ioasids.find((x) => x.id === i.parent);
          if (i.pgtbl?.kind !== 'nested') out.push(`ioasid ${i.id} has parent ${i.parent} but a ${i.pgtbl?.kind ?? 'no'} page table`);
          if (p && p.pgtbl?.kind !== 'iova') out.push(`nested ioasid ${i.id} sits on ioasid ${p.id}, whose table is ${p.pgtbl?.kind ?? 'none'}, not iova`);
          if (p && p.owner.pid !== i.owner.pid) out.push(`nested ioasid ${i.id} of process ${i.owner.pid} sits on ioasid ${p.id} of process ${p.owner.pid}`);
        }
      }
      return out;
    },
  }),
  check({
    name: 'live-ioasid-has-its-fd',
    group: GROUP,
    rule: 'the owning fd holds an ioasid until DESTROY or close: a live one belongs to an open ioasid fd of a running owner; a destroyed one has a destroyed table',
    run: ({ now }) => {
      const procs = new Map(now.host.processes.map((p) => [p.pid, p]));
      const out: string[] = [];
      for (const i of now.host.ioasids) {
        if (i.pgtbl && i.pgtbl.destroyed !== (i.state === 'destroyed')) out.push(`ioasid ${i.id} is ${i.state} but its page table is ${i.pgtbl.destroyed ? '' : 'not '}destroyed`);
        if (i.state === 'destroyed') continue;
        const p = procs.get(i.owner.pid);
        if (!p || p.state !== 'running') out.push(`ioasid ${i.id} is ${i.state} but its owner ${i.owner.pid} is ${p ? p.state : 'unknown'}`);
        else if (!p.fds.some((f) => f.fd === i.owner.fd && f.kind === 'ioasid')) out.push(`ioasid ${i.id} is ${i.state} but process ${p.pid} has no ioasid fd ${i.owner.fd}`);
      }
      return out;
    },
  }),
];
