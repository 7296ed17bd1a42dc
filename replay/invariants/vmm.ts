// The VMM and the host agree (DESIGN §3, §4): a running VM is a running host process holding its KVM VM fd, ioasid
// fd and GPA ioasid; every vPASID its vIOMMU mirrors is on the host exactly as the shadow table says (a nested
// ioasid on the GPA ioasid, owned by the VM's process, routed on each vrid's device, mapped in the VM's vPASID
// table), and the host maps no vPASID the shadow table does not know. A dead VMM leaves no VM process behind.
import type { KernelState } from '../../apps/host-kernel/src/kernel-state';
import type { JournalEvent } from '@app/shared/journal/journal';
import { check, type Check, type JournalFold, type Snapshot } from './types';

const GROUP = 'vmm';
/** Host processes the VMM creates for its VMs are named `vmm/<vm name>` (vm-builder.ts). */
const VM_COMM = /^vmm\//;

const proc = (s: KernelState, pid: number): KernelState['processes'][number] | undefined => s.processes.find((p) => p.pid === pid);

export const VMM_CHECKS: Check[] = [
  check({
    name: 'running-vm-has-host-side',
    group: GROUP,
    rule: 'a running VM is a running host process holding its KVM VM fd, its ioasid fd and its bound GPA ioasid',
    run: ({ now }) => {
      const out: string[] = [];
      const pids = new Map<number, number>();
      for (const vm of now.vmm?.vms ?? []) {
        if (vm.state !== 'running' || !vm.host) continue;
        const h = vm.host;
        if (pids.has(h.pid)) out.push(`vms ${pids.get(h.pid)} and ${vm.id} share host process ${h.pid}`);
        pids.set(h.pid, vm.id);
        const p = proc(now.host, h.pid);
        if (!p || p.state !== 'running') {
          out.push(`vm ${vm.id} is running but its host process ${h.pid} is ${p?.state ?? 'unknown'}`);
          continue;
        }
        if (!p.fds.some((f) => f.fd === h.vmFd && f.kind === 'kvm-vm')) out.push(`vm ${vm.id}: host process ${h.pid} has no KVM VM fd ${h.vmFd}`);
        if (!p.fds.some((f) => f.fd === h.ioasidFd && f.kind === 'ioasid')) out.push(`vm ${vm.id}: host process ${h.pid} has no ioasid fd ${h.ioasidFd}`);
        const gpa = now.host.ioasids.find((i) => i.id === h.gpaIoasid);
        if (!gpa || gpa.state !== 'bound' || gpa.pgtbl?.kind !== 'iova' || gpa.owner.pid !== h.pid) out.push(`vm ${vm.id}: its GPA ioasid ${h.gpaIoasid} is not a bound iova ioasid of process ${h.pid}`);
      }
      return out;
    },
  }),
  check({
    name: 'shadow-mirrors-host',
    group: GROUP,
    rule: "the vIOMMU's shadow table and the host agree: each mirrored vPASID is a nested ioasid on the GPA ioasid, routed on each of its devices and mapped in the VM's vPASID table, and nothing else is mapped",
    run: ({ now }) => {
      const s = now.host;
      const out: string[] = [];
      for (const vm of now.vmm?.vms ?? []) {
        if (vm.state !== 'running' || !vm.host) continue;
        const h = vm.host;
        const kvm = s.vms.find((v) => v.pid === h.pid && v.fd === h.vmFd);
        for (const b of vm.shadow) {
          if (b.stale) continue;
          const i = s.ioasids.find((x) => x.id === b.ppasid);
          if (!i || i.state !== 'bound' || i.owner.pid !== h.pid || i.parent !== h.gpaIoasid) {
            out.push(`vm ${vm.id} vPASID ${b.vpasid}: its host ioasid ${b.ppasid} is ${i ? `${i.state}, owned by ${i.owner.pid}, parent ${i.parent}` : 'gone'}, not a bound nested ioasid of process ${h.pid} on GPA ioasid ${h.gpaIoasid}`);
            continue;
          }
          const routes = s.routes.filter((r) => r.ppasid === b.ppasid && r.ioasid === b.ppasid && !r.blocked).length;
          if (routes !== b.vrids.length) out.push(`vm ${vm.id} vPASID ${b.vpasid}: allowed on ${b.vrids.length} vrids, the host routes PASID ${b.ppasid} on ${routes} devices`);
          const m = kvm?.pasids.find((x) => x.vpasid === b.vpasid);
          if (!m || m.ppasid !== b.ppasid || !m.translates) out.push(`vm ${vm.id} vPASID ${b.vpasid}: the VM's KVM vPASID table ${m ? `maps it to ${m.ppasid}${m.translates ? '' : ' (not translating)'}` : 'does not map it'}, the shadow says ${b.ppasid}`);
        }
        for (const m of kvm?.pasids ?? []) {
          if (!vm.shadow.some((b) => b.vpasid === m.vpasid && b.ppasid === m.ppasid)) out.push(`vm ${vm.id}: KVM maps vPASID ${m.vpasid} to ${m.ppasid}, which its vIOMMU's shadow table does not know`);
        }
      }
      return out;
    },
  }),
  check({
    name: 'vm-processes-belong-to-vms',
    group: GROUP,
    rule: "a VM's host process lives exactly as long as its VM runs: none is left once the VM is stopped, deleted or its VMM dead",
    run: ({ now }) => {
      const live = new Set((now.vmm?.vms ?? []).filter((v) => v.state !== 'stopped' && v.host).map((v) => v.host?.pid));
      return now.host.processes
        .filter((p) => p.state === 'running' && VM_COMM.test(p.comm) && !live.has(p.pid))
        .map((p) => `host process ${p.pid} (${p.comm}) still runs, but ${now.vmm ? 'no running VM has it' : 'the VMM is down'}`);
    },
  }),
  check({
    name: 'guest-binds-are-mirrored',
    group: GROUP,
    rule: "a guest process bound on a device is mirrored by its VM's vIOMMU (the same vPASID, allowed on that vrid)",
    run: ({ now, fold }) => {
      const out: string[] = [];
      for (const [vmId, g] of now.guests) {
        const vm = now.vmm?.vms.find((v) => v.id === vmId);
        if (!vm || vm.state !== 'running') continue;
        // RAM written behind the OS in this boot: the directory it thinks it wrote may hold anything now.
        if (fold.ramWrittenBehindOs.get(vmId) === g.bootedAtMs) continue;
        for (const p of g.processes) {
          if (p.vpasid === null || p.vrids.length === 0) continue;
          const b = vm.shadow.find((x) => x.vpasid === p.vpasid && !x.stale);
          const missing = p.vrids.filter((v) => !b?.vrids.includes(v));
          if (missing.length) out.push(`guest of vm ${vmId}: process ${p.pid} is bound with vPASID ${p.vpasid} on vrids ${p.vrids.join(', ')}, the vIOMMU mirrors it on ${b ? b.vrids.join(', ') || 'none' : 'nothing'}`);
        }
      }
      return out;
    },
  }),
];

/**
 * Notes the VMs whose RAM something other than their guest OS wrote in this step: a device's DMA through the VM's
 * GPA space (`hw.dma` on a route to the VM's GPA ioasid: the RID route of its device) or the VMM's memory door
 * (`guest.write_memory`). Either may land on the OS's own PASID directory or tables: fuzzer seed 7, after 11,690
 * operations, wrote vm 99's canary over 8 KiB at GPA 0 through its device's RID route, the directory at 4096
 * included, and the process the OS then bound with vPASID 3 was, rightly, mirrored on nothing (the vIOMMU read the
 * directory entry as not present). The note holds until the guest boots again (guest-binds-are-mirrored skips it).
 */
export function noteRamWrittenBehindOs(fold: JournalFold, rows: Map<string, JournalEvent[]>, before: Snapshot | null, now: Snapshot): void {
  const written = new Set<number>();
  for (const r of rows.get('vmm') ?? []) {
    const vm = /^vm:(\d+)$/.exec(r.actor);
    if (r.operation === 'guest.write_memory' && r.errno === null && vm) written.add(Number(vm[1]));
  }
  for (const r of rows.get('host-kernel') ?? []) {
    if (r.operation !== 'hw.dma' || r.errno !== null || !before) continue;
    const a = r.args as { bdf?: string; pasid?: number | null; write?: boolean } | null;
    if (!a?.write || (r.result as { ok?: boolean } | null)?.ok !== true) continue;
    const ppasid = a.pasid ? a.pasid : null; // 0 or none: the request carries no PASID (the RID route)
    const route = before.host.routes.find((x) => x.bdf === a.bdf && x.ppasid === ppasid && !x.blocked);
    const vm = route && before.vmm?.vms.find((v) => v.host?.gpaIoasid === route.ioasid);
    if (vm) written.add(vm.id);
  }
  for (const vm of written) fold.ramWrittenBehindOs.set(vm, now.guests.get(vm)?.bootedAtMs ?? null);
}
