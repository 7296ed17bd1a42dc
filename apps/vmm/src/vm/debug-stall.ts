import type { HostKernelPort } from '../host-kernel.port';

/**
 * A fault-injection knob for crash tests (like iommufd's fail_nth through debugfs): with
 * DEBUG_STALL_BEFORE=<host call>, every such call the VMM makes hangs forever, so a test can
 * kill the VMM at exactly that point of a sequence (e.g. after ALLOW, before MAP_PASID).
 */
export function withStall(client: HostKernelPort, method: string | null): HostKernelPort {
  if (!method) return client;
  const never = new Promise<never>(() => undefined);
  const wrap = (c: HostKernelPort): HostKernelPort =>
    new Proxy(c, {
      get(target, prop, receiver) {
        if (prop === method) return () => never;
        if (prop === 'as') return (token: string) => wrap(target.as(token));
        return Reflect.get(target, prop, receiver) as unknown;
      },
    });
  return wrap(client);
}
