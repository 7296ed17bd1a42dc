// The VMM's REST routes on the in-process door: each is its controller's one line, through the same bearer rule
// (VmmApp.authorize: `admin`, `caller-or-admin`, or the VM's own token).
import type { Descriptor } from '@app/shared/contract/host-kernel';
import type { AuthKind } from '@app/shared/auth/bearer';
import { GuestReadQuery, GuestWriteDto, WrmsrDto } from '@app/shared/nest/shared.dto';
import { decodePayload, encodePayload, type PayloadEncoding } from '@app/shared/payload';
import type { VmmApp } from '../../apps/vmm/src/vmm.app';
import type { VmmCaller } from '../../apps/vmm/src/vmm-caller';
import { ContextDto, InvalidateDto, PageResponseDto } from '../../apps/vmm/src/viommu/viommu.dto';
import { CreateVmDto, VcpuEnqcmdDto, VcpuEnqcmdsDto } from '../../apps/vmm/src/vm/vm.dto';
import { intParam, intQuery, type Route, route, type RouteCall } from './route';

type V = Route<VmmApp>;

const id = (c: RouteCall): number => intParam(c, 'id');
const as = (v: VmmApp, c: RouteCall, kind: AuthKind = 'caller'): VmmCaller => v.authorize(kind, c.token, c.params.id === undefined ? undefined : id(c));
const none = async (p: Promise<unknown>): Promise<undefined> => void (await p);

export const VMM_ROUTES: V[] = [
  route('POST', '/v1/vms', 201, (v, c) => {
    const caller = as(v, c, 'admin'); // the bearer rule first, as REST's guard runs before the body's pipes
    const b = c.body as { name: string; memoryMiB: number; vcpus: number; devices: string[] };
    return v.vms.create(caller, { name: b.name, memoryMiB: b.memoryMiB, vcpus: b.vcpus, devices: b.devices });
  }, { body: CreateVmDto }),
  route('GET', '/v1/vms', 200, (v, c) => v.vms.list(as(v, c, 'admin'))),
  route('GET', '/v1/vms/:id', 200, (v, c) => v.vms.get(as(v, c, 'caller-or-admin'), id(c))),
  route('DELETE', '/v1/vms/:id', 204, (v, c) => none(v.vms.remove(as(v, c, 'admin'), id(c)))),
  route('POST', '/v1/vms/:id/start', 200, (v, c) => v.vms.powerOn(as(v, c, 'admin'), id(c))),
  route('GET', '/v1/vms/:id/machine', 200, (v, c) => v.hardware.machine(as(v, c, 'caller-or-admin'), id(c))),
  route('GET', '/v1/vms/:id/ram', 200, (v, c) => v.hardware.ram(as(v, c), id(c))),
  route('PUT', '/v1/vms/:id/memory', 204, (v, c) =>
    none(v.hardware.writeMemory(as(v, c), id(c), c.body.gpa as number, decodePayload(c.body.data as string, c.body.encoding as PayloadEncoding | undefined))),
    { body: GuestWriteDto },
  ),
  route('GET', '/v1/vms/:id/memory', 200, async (v, c) =>
    encodePayload(await v.hardware.readMemory(as(v, c), id(c), intQuery(c, 'gpa') as number, intQuery(c, 'length') as number), c.query.encoding as PayloadEncoding | undefined),
    { query: GuestReadQuery },
  ),
  route('POST', '/v1/vms/:id/vcpus/:n/wrmsr', 204, (v, c) => none(v.hardware.wrmsr(as(v, c), id(c), intParam(c, 'n'), c.body.msr as 'IA32_PASID', c.body.value as number)), { body: WrmsrDto }),
  route('POST', '/v1/vms/:id/vcpus/:n/enqcmd', 201, (v, c) => v.hardware.enqcmd(as(v, c), id(c), intParam(c, 'n'), c.body.vrid as number, c.body.descriptor as Descriptor), { body: VcpuEnqcmdDto }),
  route('POST', '/v1/vms/:id/vcpus/:n/enqcmds', 201, (v, c) => {
    const caller = as(v, c);
    const b = c.body as { vrid: number; descriptor: Descriptor; pasid: number; privileged: boolean };
    return v.hardware.enqcmds(caller, id(c), intParam(c, 'n'), { vrid: b.vrid, descriptor: b.descriptor, pasid: b.pasid, privileged: b.privileged });
  }, { body: VcpuEnqcmdsDto }),
  route('PUT', '/v1/vms/:id/viommu/context/:vrid', 204, (v, c) => none(v.viommu.setContext(as(v, c), id(c), intParam(c, 'vrid'), c.body.pasidDirGpa as number)), { body: ContextDto }),
  route('POST', '/v1/vms/:id/viommu/invalidate', 201, (v, c) => v.viommu.invalidate(as(v, c), id(c), c.body.descriptors as never), { body: InvalidateDto }),
  route('GET', '/v1/vms/:id/viommu/faults', 200, (v, c) => v.viommu.faults(as(v, c), id(c))),
  route('GET', '/v1/vms/:id/viommu/page-requests', 200, (v, c) => v.viommu.pageRequests(as(v, c), id(c))),
  route('POST', '/v1/vms/:id/viommu/page-response', 204, (v, c) => {
    const caller = as(v, c);
    const b = c.body as { vrid: number; vpasid: number; grpid: number; code: 'success' | 'invalid' | 'failure' };
    return none(v.viommu.pageResponse(caller, id(c), { vrid: b.vrid, vpasid: b.vpasid, grpid: b.grpid, code: b.code }));
  }, { body: PageResponseDto }),
];
