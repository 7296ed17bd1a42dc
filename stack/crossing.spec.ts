import { kernelState } from '../apps/host-kernel/src/kernel-state';
import { MAX_BODY_DEPTH, RESERVED_KEYS } from '@app/shared/json-guard';
import type { InvalidationDescriptor } from '@app/shared/contract/vmm';
import type { PgtblSpec } from '@app/shared/contract/host-kernel';
import { InProcessStack } from './in-process-stack';
import { InProcessVmm } from './vmm.in-process';

const DSA0 = '0000:6a:01.0';

/** A value nested `depth` arrays deep. */
function deep(depth: number): unknown {
  let v: unknown = 0;
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

describe('the in-process door refuses what the REST door refuses, before the other app sees it', () => {
  it('arguments nested deeper than MAX_BODY_DEPTH: EINVAL (not a 500), nothing journaled, nothing changed', async () => {
    const stack = await InProcessStack.create();
    try {
      const vm = await stack.createVm({ name: 'deep', devices: [DSA0] });
      const door = new InProcessVmm(stack.vmm, { app: 'guest', clock: stack.operator.clock }, vm.id, vm.token);
      const before = { vmm: (await stack.journals()).vmm.length, host: kernelState(stack.host.kernel) };
      for (const depth of [MAX_BODY_DEPTH + 1, 3000, 200_000]) {
        const batch = [{ type: 'wait', nested: deep(depth) }] as unknown as InvalidationDescriptor[];
        await expect(door.invalidate(batch)).rejects.toMatchObject({ errno: 'EINVAL', status: 400 });
      }
      expect((await stack.journals()).vmm.length).toBe(before.vmm);
      expect(kernelState(stack.host.kernel)).toEqual(before.host);
    } finally {
      await stack.close();
    }
  });

  it('fields named __proto__ or constructor are unknown fields: EINVAL, and the host is left as it was', async () => {
    const stack = await InProcessStack.create();
    try {
      const { k } = await stack.hostProcess('tenant');
      const fd = await k.openIoasid();
      const ioasid = await k.alloc(fd);
      const before = kernelState(stack.host.kernel);
      for (const key of RESERVED_KEYS) {
        // As a body parsed from the wire carries it: an own property, not the object's prototype.
        const spec = JSON.parse(`{"kind":"iova",${JSON.stringify(key)}:{"kind":"mm"}}`) as PgtblSpec;
        await expect([key, await k.bindPgtbl(fd, ioasid, spec).catch((e: { errno: string }) => e.errno)]).toEqual([key, 'EINVAL']);
      }
      expect(kernelState(stack.host.kernel)).toEqual(before);
    } finally {
      await stack.close();
    }
  });
});
