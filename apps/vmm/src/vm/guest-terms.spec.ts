// DESIGN §11: a guest never learns a host id. Every guest-facing route of the VMM (its OpenAPI document is the
// list), answered with the VM's own token, in three states of the VM: running, stopped because its host process
// was killed, and stopped because its rebuild after a VMM restart failed on a device another tenant holds.
// Bodies and error messages alike must name no host pid, fd, hva or PASID, no host URL, and no host file (the RAM
// route hands a handle, never the name of the memory file behind guest RAM).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LamportClock } from '@app/shared/clock';
import { KernelError } from '@app/shared/errno';
import { encodePasidEntry } from '@app/shared/vtd/pasid-entry';
import { InProcessHostKernel } from '../../../../stack/host-kernel.in-process';
import { InProcessStack, STACK_DEVICES } from '../../../../stack/in-process-stack';
import { InProcessVmm } from '../../../../stack/vmm.in-process';
import { processOps } from '../../../host-kernel/src/process/process.ops';
import { VmmApp } from '../vmm.app';
import type { VmmCaller } from '../vmm-caller';

const [DSA0, DSA1] = STACK_DEVICES.map((d) => d.bdf);
/** Routes of the VMM's document that only the VMM admin calls; every other `/v1/vms/{id}...` route is the guest's. */
const ADMIN_ROUTES = ['POST /v1/vms', 'GET /v1/vms', 'DELETE /v1/vms/{id}', 'POST /v1/vms/{id}/start'];
/** Words that name host objects: a guest-facing answer must use none (plain "host" is fine: it names nothing). */
const HOST_WORDS = /\b(pid|fds?|hva|hpa|ppasid|ioasids?|process \d+)\b|https?:\/\/|127\.0\.0\.1/i;
const HOST_FIELDS = new Set(['pid', 'fd', 'hostPid', 'hva', 'ppasid', 'ioasid', 'token', 'hostDetail']);

type Answer = { route: string; value: unknown };

function guestRoutes(): string[] {
  const doc = JSON.parse(readFileSync(join(__dirname, '../../../../openapi/vmm.json'), 'utf8')) as { paths: Record<string, Record<string, unknown>> };
  const all = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
  return all.filter((r) => r.includes(' /v1/vms/{id}') && !ADMIN_ROUTES.includes(r)).sort();
}

/** Each guest-facing route: a call that should work and one that should be refused, as the VM's own door makes them. */
function routeCalls(vmm: VmmApp, id: number, token: string, vrid: number, events: unknown[]): Record<string, Array<() => Promise<unknown>>> {
  const door = new InProcessVmm(vmm, { app: 'guest', clock: new LamportClock() }, id, token);
  const caller = (): VmmCaller => vmm.authorize('caller', token, id);
  const descriptor = { op: 'noop' as const, completion: 0x8000 };
  return {
    'GET /v1/vms/{id}': [async () => vmm.vms.get(caller(), id), async () => vmm.vms.get(caller(), id + 1000)],
    'GET /v1/vms/{id}/machine': [() => door.machine()],
    'GET /v1/vms/{id}/lifeline': [
      async () => {
        const l = door.holdLifeline({ onEvent: (e) => events.push(e), onEnd: (r) => events.push({ end: r }) });
        await l.opened;
        return 'held';
      },
    ],
    'GET /v1/vms/{id}/ram': [
      async () => vmm.hardware.ram(caller(), id),
      async () => vmm.hardware.ram(caller(), id + 1000),
    ],
    'PUT /v1/vms/{id}/memory': [() => door.writeMemory(0x8000, Buffer.alloc(64)), () => door.writeMemory(64 << 20, Buffer.alloc(8))],
    'GET /v1/vms/{id}/memory': [() => door.readMemory(0x8000, 64), () => door.readMemory(64 << 20, 8)],
    'POST /v1/vms/{id}/vcpus/{n}/wrmsr': [() => door.wrmsr(0, 'IA32_PASID', 0), () => door.wrmsr(0, 'IA32_PASID', 0x7ff00000), () => door.wrmsr(9, 'IA32_PASID', 0)],
    // IA32_PASID is invalid: #GP, and a vrid the VM does not have.
    'POST /v1/vms/{id}/vcpus/{n}/enqcmd': [() => door.enqcmd(0, vrid, descriptor), () => door.enqcmd(0, 0x99, descriptor)],
    'POST /v1/vms/{id}/vcpus/{n}/enqcmds': [() => vmm.hardware.enqcmds(caller(), id, 0, { vrid, descriptor, pasid: 5, privileged: true })],
    'PUT /v1/vms/{id}/viommu/context/{vrid}': [() => door.setContext(vrid, 0x1000), () => door.setContext(vrid, 0x1008)],
    'POST /v1/vms/{id}/viommu/invalidate': [
      // vPASID 5's entry points at a page table outside guest RAM (the host refuses or faults), then a malformed batch.
      () => door.invalidate([{ type: 'pasid-cache', vpasid: 5 }, { type: 'wait' }]),
      () => door.invalidate([{ type: 'bogus' } as never]),
    ],
    'GET /v1/vms/{id}/viommu/faults': [async () => vmm.viommu.faults(caller(), id)],
    'GET /v1/vms/{id}/viommu/page-requests': [async () => vmm.viommu.pageRequests(caller(), id)],
    'POST /v1/vms/{id}/viommu/page-response': [() => vmm.viommu.pageResponse(caller(), id, { vrid, vpasid: 5, grpid: 1, code: 'success' })],
  };
}

/** Runs every call; the answers (bodies, or errno + message) in order. */
async function ask(calls: Record<string, Array<() => Promise<unknown>>>): Promise<Answer[]> {
  const out: Answer[] = [];
  for (const [route, fns] of Object.entries(calls)) {
    for (const fn of fns) {
      try {
        out.push({ route, value: await fn() });
      } catch (err) {
        if (!(err instanceof KernelError)) throw err;
        out.push({ route, value: { errno: err.errno, status: err.status, message: err.message } });
      }
    }
  }
  return out;
}

/** What in an answer names a host object: a host-only field, a host word, a host pid, a host file's name. */
function leaks(answers: Answer[], hostPids: number[], hostFiles: string[]): string[] {
  const out: string[] = [];
  const pidText = new RegExp(`\\b(${hostPids.join('|')})\\b`);
  const visit = (route: string, v: unknown, path: string): void => {
    if (typeof v === 'string') {
      if (HOST_WORDS.test(v) || pidText.test(v) || hostFiles.some((f) => v.includes(f))) out.push(`${route} ${path}: ${v}`);
    } else if (Array.isArray(v)) v.forEach((x, i) => visit(route, x, `${path}[${i}]`));
    else if (v && typeof v === 'object' && !Buffer.isBuffer(v)) {
      for (const [k, x] of Object.entries(v)) {
        if (HOST_FIELDS.has(k)) out.push(`${route} ${path}.${k}`);
        visit(route, x, `${path}.${k}`);
      }
    }
  };
  for (const a of answers) visit(a.route, a.value, '');
  return out;
}

describe('guest-facing answers speak in guest terms only', () => {
  it('every guest-facing route of the VMM document is exercised here', () => {
    const table = routeCalls({} as VmmApp, 1, 't', 8, []);
    expect(Object.keys(table).sort()).toEqual(guestRoutes());
  });

  it('running, stopped by a host kill, and stopped by a failed rebuild: no host pid, fd, PASID or URL in any answer', async () => {
    const stack = await InProcessStack.create();
    let restarted: VmmApp | null = null;
    try {
      const vm = await stack.createVm({ name: 'victim', devices: [DSA0] });
      const spare = await stack.createVm({ name: 'rebuilt', devices: [DSA1] });
      const vrid = stack.vmm.vms.machine(vm.id).devices[0].vrid;
      const spareVrid = stack.vmm.vms.machine(spare.id).devices[0].vrid;
      const events: unknown[] = [];
      // A hostile PASID entry for vPASID 5 (first-level root far outside guest RAM) and another tenant of the host.
      const door = new InProcessVmm(stack.vmm, { app: 'guest', clock: new LamportClock() }, vm.id, vm.token);
      const tenant = await stack.hostProcess('other-tenant');
      await tenant.k.openIoasid();
      const answers = await ask(routeCalls(stack.vmm, vm.id, vm.token, vrid, events));
      await door.writeMemory(0x1000, Buffer.alloc(4096));
      await door.writeMemory(0x2000, Buffer.alloc(4096));
      await door.writeMemory(0x1000, Buffer.from([0x01, 0x20, 0, 0, 0, 0, 0, 0])); // dir entry 0 → table at 0x2000
      await door.writeMemory(0x2000 + 5 * 64, encodePasidEntry({ present: true, pgtt: 1, flpm: 0, flptr: 2 ** 40 }));
      answers.push(...(await ask(routeCalls(stack.vmm, vm.id, vm.token, vrid, events))));

      // The host kills the VM's process (admin): the VM is stopped, and every guest call says so.
      const hostPid = stack.vmm.vms.running(vm.id).handles.pid;
      const hostFiles = stack.host.kernel.procs.all().flatMap((p) => p.mm.sharedFiles().map((f) => f.name));
      expect(hostFiles).toContain(stack.vmm.vms.running(vm.id).ramFile);
      await stack.host.dispatcher.exec(processOps.exit, { kind: 'admin' }, { pid: hostPid });
      await stack.settle();
      expect(stack.vmm.vms.get(stack.vmm.authorize('admin', stack.vmmAdminToken), vm.id)).toMatchObject({ state: 'stopped' });
      const stopped = await ask(routeCalls(stack.vmm, vm.id, vm.token, vrid, events));
      expect(stopped.filter((a) => (a.value as { errno?: string }).errno === 'ENODEV').length).toBeGreaterThan(5);

      // A VMM restart whose rebuild of `spare` fails: another tenant opened its device meanwhile (the host's
      // refusal names that tenant's pid and fd).
      stack.vmm.vms.shutdown();
      await stack.settle();
      await tenant.k.openDevice(DSA1);
      restarted = await VmmApp.open({
        journal: stack.vmm.journal,
        host: new InProcessHostKernel(stack.host, { app: 'vmm', clock: stack.vmm.journal.clock }),
        adminToken: stack.vmmAdminToken,
        pasidQuota: 64,
      });
      await restarted.vms.restoreAll();
      expect(restarted.vms.get(restarted.authorize('admin', stack.vmmAdminToken), spare.id)).toMatchObject({ state: 'stopped' });
      const failed = await ask(routeCalls(restarted, spare.id, spare.token, spareVrid, events));

      const hostPids = stack.host.kernel.procs.all().map((p) => p.pid);
      expect(hostPids).toContain(hostPid);
      const all = [...answers, ...stopped, ...failed, ...events.map((value) => ({ route: 'lifeline event', value }))];
      expect(leaks(all, hostPids, hostFiles)).toEqual([]);
    } finally {
      restarted?.vms.shutdown();
      await stack.close();
    }
  });
});
