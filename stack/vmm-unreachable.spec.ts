// A guest console call whose VMM never answers (killed while the call was in flight: the REST transport fails or
// times out) is answered in guest terms: ENODEV, no 5xx, no VMM URL (found by the fuzzer over REST, seed 11: a
// submit racing a VMM SIGKILL answered 502 EIO "POST http://127.0.0.1:<port>/v1/vms/2/vcpus/0/enqcmd: fetch failed").
import { KernelError } from '@app/shared/errno';
import { transportError } from '@app/shared/http/rest-client';
import type { VmmPort } from '../apps/guest/src/vmm.port';
import { InProcessStack, STACK_DEVICES } from './in-process-stack';
import { failWhen } from './fail-when';
import { interceptPort } from './intercept-port';

const open: InProcessStack[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
});

/** The error the guest's REST door raises for a call its VMM never answered (the real transportError). */
const NO_ANSWER = {
  refused: () => transportError('POST', 'http://127.0.0.1:45171/v1/vms/1/vcpus/0/enqcmd', Object.assign(new TypeError('fetch failed'), { code: 'ECONNRESET' })),
  timeout: () => transportError('POST', 'http://127.0.0.1:45171/v1/vms/1/vcpus/0/enqcmd', Object.assign(new Error('Headers Timeout Error'), { code: 'UND_ERR_HEADERS_TIMEOUT' })),
};

describe('a guest whose VMM does not answer', () => {
  it.each(Object.keys(NO_ANSWER) as Array<keyof typeof NO_ANSWER>)('%s: the console call fails with ENODEV in guest terms, journaled so', async (kind) => {
    const stack = await InProcessStack.create();
    open.push(stack);
    const vm = await stack.createVm({ name: 'vm1', memoryMiB: 8, devices: [STACK_DEVICES[0].bdf] });
    let lost = false;
    const guest = await stack.bootGuest(vm, {
      wrapPort: (port: VmmPort) => interceptPort(port, (method, args, forward) => (lost && method === 'enqcmd' ? Promise.reject(NO_ANSWER[kind]()) : forward())),
    });
    const vrid = guest.status().machine?.devices[0].vrid as number;
    const { pid } = await stack.console(vm.id, (g) => g.createProcess('app'));
    await stack.console(vm.id, (g) => g.bind(pid, vrid));
    const sent = NO_ANSWER[kind]();
    expect(sent.status).toBeGreaterThanOrEqual(500); // what the door raises is a 5xx naming the VMM's URL
    expect(sent.message).toContain('127.0.0.1');

    lost = true;
    const err = await stack.console(vm.id, (g) => g.submit(pid, { vrid, descriptor: { op: 'noop' } })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KernelError);
    expect(err).toMatchObject({ errno: 'ENODEV', status: 404 });
    expect(JSON.stringify({ message: (err as Error).message })).not.toMatch(/http|127\.0\.0\.1|vcpus/);
    const rows = (await stack.journals()).guests.get(vm.id) ?? [];
    expect(rows.filter((r) => r.operation === 'accel.submit').map((r) => r.errno)).toEqual(['ENODEV']);
  });

  it('an errno the VMM answered is not rewritten', async () => {
    const stack = await InProcessStack.create();
    open.push(stack);
    const vm = await stack.createVm({ name: 'vm1', memoryMiB: 8, devices: [STACK_DEVICES[0].bdf] });
    const door = { f: null as ReturnType<typeof failWhen<VmmPort>> | null };
    const guest = await stack.bootGuest(vm, { wrapPort: (port) => (door.f = failWhen(port)).port });
    const vrid = guest.status().machine?.devices[0].vrid as number;
    const { pid } = await stack.console(vm.id, (g) => g.createProcess('app'));
    (door.f as NonNullable<typeof door.f>).fail = (method) => (method === 'setContext' || method === 'invalidate' ? 'EBUSY' : null);
    await expect(stack.console(vm.id, (g) => g.bind(pid, vrid))).rejects.toMatchObject({ errno: 'EBUSY' });
  });
});
