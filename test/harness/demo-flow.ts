// The demo `npm start` runs (scripts/demo.js), as a flow over any stack: create the demo VM with both
// accelerators, boot its guest, bind a guest process to the first device, ENQCMD memmove 64 KiB into a destination
// never touched (through page requests), check the bytes, copy again (the pages are there now), unbind (the
// caller then deletes the VM). The REST and the in-process drivers below run it on either transport.
import type { JournalEvent } from '../../libs/shared/src/journal/journal';
import type { InProcessStack } from '../../stack/in-process-stack';
import { guestCall, readGuest } from './guest';
import { AUDIT, http, type Stack } from './stack';

export const DEMO_DEVICES = ['0000:6a:01.0', '0000:6b:01.0'];
export const DEMO_LENGTH = 64 * 1024;

/** What an operator does to a running stack: the VMM's admin calls and a guest's console. */
export interface DemoDriver {
  createVm(spec: { name: string; memoryMiB: number; vcpus: number; devices: string[] }): Promise<{ id: number; token: string }>;
  bootGuest(vm: { id: number; token: string }): Promise<void>;
  deleteVm(id: number): Promise<void>;
  vridOf(vmId: number): Promise<number>;
  createProcess(vmId: number, name: string): Promise<number>;
  mmap(vmId: number, pid: number, length: number): Promise<number>;
  write(vmId: number, pid: number, gva: number, data: Buffer): Promise<void>;
  read(vmId: number, pid: number, gva: number, length: number): Promise<Buffer>;
  bind(vmId: number, pid: number, vrid: number): Promise<number>;
  unbind(vmId: number, pid: number, vrid: number): Promise<void>;
  submit(vmId: number, pid: number, vrid: number, descriptor: { op: 'memmove'; src: number; dst: number; length: number }): Promise<unknown>;
}

/** The demo up to the unbind; the VM is left running (its guest's journal can still be read). */
export async function runDemo(d: DemoDriver): Promise<{ vmId: number; copied: Buffer; bytes: Buffer; done: unknown }> {
  const vm = await d.createVm({ name: 'demo', memoryMiB: 64, vcpus: 1, devices: DEMO_DEVICES });
  await d.bootGuest(vm);
  const vrid = await d.vridOf(vm.id);
  const pid = await d.createProcess(vm.id, 'demo');
  const src = await d.mmap(vm.id, pid, DEMO_LENGTH);
  const dst = await d.mmap(vm.id, pid, DEMO_LENGTH);
  const bytes = Buffer.from(Array.from({ length: DEMO_LENGTH }, (_, i) => (i * 131 + 17) & 0xff));
  await d.write(vm.id, pid, src, bytes);
  await d.bind(vm.id, pid, vrid);
  const done = await d.submit(vm.id, pid, vrid, { op: 'memmove', src, dst, length: DEMO_LENGTH });
  const copied = await d.read(vm.id, pid, dst, DEMO_LENGTH);
  const again = await d.submit(vm.id, pid, vrid, { op: 'memmove', src, dst, length: DEMO_LENGTH });
  if (JSON.stringify(again) !== JSON.stringify(done)) throw new Error(`the second copy ended otherwise: ${JSON.stringify(again)}`);
  await d.unbind(vm.id, pid, vrid);
  return { vmId: vm.id, copied, bytes, done };
}

/** The demo over the three spawned apps (the guest app's console over HTTP). */
export function restDriver(stack: Stack): DemoDriver & { guestUrls: Map<number, string> } {
  const guestUrls = new Map<number, string>();
  const url = (vmId: number): string => guestUrls.get(vmId) as string;
  return {
    guestUrls,
    createVm: (spec) => stack.createVm(spec),
    bootGuest: async (vm) => void guestUrls.set(vm.id, (await stack.startGuest(vm)).url),
    deleteVm: async (id) => {
      const r = await http('DELETE', `${stack.vmmApp.url}/v1/vms/${id}`, { token: 'vmm-admin-token-e2e' });
      if (r.status !== 204) throw new Error(`delete vm: ${r.status} ${r.text}`);
    },
    vridOf: async (vmId) => (await guestCall<{ machine: { devices: Array<{ vrid: number }> } }>(url(vmId), 'GET', '/v1/status')).machine.devices[0].vrid,
    createProcess: async (vmId, name) => (await guestCall<{ pid: number }>(url(vmId), 'POST', '/v1/processes', { name })).pid,
    mmap: async (vmId, pid, length) => (await guestCall<{ gva: number }>(url(vmId), 'POST', `/v1/processes/${pid}/mmap`, { length })).gva,
    write: async (vmId, pid, gva, data) => void (await guestCall(url(vmId), 'PUT', `/v1/processes/${pid}/memory`, { gva, data: data.toString('base64') })),
    read: (vmId, pid, gva, length) => readGuest(url(vmId), pid, gva, length),
    bind: async (vmId, pid, vrid) => (await guestCall<{ vpasid: number }>(url(vmId), 'POST', '/v1/sva/bind', { pid, vrid })).vpasid,
    unbind: async (vmId, pid, vrid) => void (await guestCall(url(vmId), 'POST', '/v1/sva/unbind', { pid, vrid })),
    submit: (vmId, pid, vrid, descriptor) => guestCall(url(vmId), 'POST', `/v1/processes/${pid}/submit`, { vrid, descriptor }),
  };
}

/** The demo over the in-process stack: the guest console through the operator's door, as REST requests. */
export function inProcessDriver(stack: InProcessStack): DemoDriver {
  const guest = <T>(vmId: number, method: string, path: string, body?: unknown): Promise<T> => stack.call<T>({ app: 'guest', vm: vmId, method, path, body });
  return {
    createVm: (spec) => stack.createVm(spec),
    bootGuest: async (vm) => void (await stack.bootGuest(vm)),
    deleteVm: (id) => stack.deleteVm(id),
    vridOf: async (vmId) => (await guest<{ machine: { devices: Array<{ vrid: number }> } }>(vmId, 'GET', '/v1/status')).machine.devices[0].vrid,
    createProcess: async (vmId, name) => (await guest<{ pid: number }>(vmId, 'POST', '/v1/processes', { name })).pid,
    mmap: async (vmId, pid, length) => (await guest<{ gva: number }>(vmId, 'POST', `/v1/processes/${pid}/mmap`, { length })).gva,
    write: (vmId, pid, gva, data) => guest(vmId, 'PUT', `/v1/processes/${pid}/memory`, { gva, data: data.toString('base64') }),
    read: async (vmId, pid, gva, length) => Buffer.from((await guest<{ data: string }>(vmId, 'GET', `/v1/processes/${pid}/memory?gva=${gva}&length=${length}`)).data, 'base64'),
    bind: async (vmId, pid, vrid) => (await guest<{ vpasid: number }>(vmId, 'POST', '/v1/sva/bind', { pid, vrid })).vpasid,
    unbind: (vmId, pid, vrid) => guest(vmId, 'POST', '/v1/sva/unbind', { pid, vrid }),
    submit: (vmId, pid, vrid, descriptor) => guest(vmId, 'POST', `/v1/processes/${pid}/submit`, { vrid, descriptor }),
  };
}

/** A journal row as replay compares it (DESIGN §9): tokens, times, span ids and seq excluded; inputs with their request. */
export function comparable(rows: JournalEvent[]): Array<Pick<JournalEvent, 'operation' | 'actor' | 'object' | 'args' | 'result' | 'errno' | 'input' | 'request'>> {
  return rows.map((r) => ({ operation: r.operation, actor: r.actor, object: r.object, args: r.args, result: r.result, errno: r.errno, input: r.input, request: r.request }));
}

/** Every row of one spawned app's journal, paged. */
export async function restJournal(url: string): Promise<JournalEvent[]> {
  const out: JournalEvent[] = [];
  for (let after = 0; ; ) {
    const r = await http('GET', `${url}/v1/audit/events?limit=10000&afterSeq=${after}`, { token: AUDIT });
    const page = r.body as JournalEvent[];
    if (!Array.isArray(page)) throw new Error(`audit events: ${r.status} ${r.text}`);
    if (page.length === 0) return out;
    out.push(...page);
    after = page[page.length - 1].seq;
  }
}
