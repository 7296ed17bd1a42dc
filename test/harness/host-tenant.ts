// A host process holding one of every kind of object a route can name: an ioasid fd with an ioasid and a fault
// queue, a KVM VM with a vCPU, and a device fd. The campaigns generated from openapi/*.json fill a route's
// parameters from it (`values`), so each call names a real object of this tenant.
import type { Route } from './openapi-routes';
import { http, type Stack } from './stack';

export const TENANT_BDF = '0000:6a:01.0';

export interface HostTenant {
  pid: number;
  token: string;
  /** The route's parameters, each naming this tenant's object of that kind. */
  values(r: Route): Record<string, string | number>;
}

export async function hostTenant(s: Stack, comm: string): Promise<HostTenant> {
  const v = await s.hostProcess(comm);
  const ok = async <T>(method: string, path: string): Promise<T> => {
    const res = await http(method, `${s.host.url}${path}`, { token: v.token });
    if (res.status >= 300) throw new Error(`${comm} ${method} ${path}: ${res.status} ${res.text}`);
    return res.body as T;
  };
  const ioasidFd = await v.k.openIoasid();
  const ioasid = await v.k.alloc(ioasidFd);
  const { faultQueue } = await ok<{ faultQueue: number }>('POST', `/v1/ioasid/${ioasidFd}/fault-queues`);
  const kvm = await ok<{ fd: number }>('POST', '/v1/kvm/vms');
  await ok('POST', `/v1/kvm/${kvm.fd}/vcpus`);
  const dev = await ok<{ fd: number }>('POST', `/v1/vfio/devices/${TENANT_BDF}/open`);
  const fdOf = (path: string): number => (path.startsWith('/v1/kvm/') ? kvm.fd : path.startsWith('/v1/vfio/') ? dev.fd : ioasidFd);
  return { pid: v.pid, token: v.token, values: (r) => ({ pid: v.pid, fd: fdOf(r.path), ioasid, q: faultQueue, n: 0, bdf: TENANT_BDF, pasid: ioasid }) };
}
