// The host kernel's REST routes on the in-process door: each is its controller's one line (DTO → the row of the
// command table → DTO), through the same bearer rule (HostKernelApp.authorize) and the same dispatcher.
import type { Descriptor } from '@app/shared/contract/host-kernel';
import { GuestReadQuery, GuestWriteDto, WrmsrDto } from '@app/shared/nest/shared.dto';
import { decodePayload, encodePayload, type PayloadEncoding } from '@app/shared/payload';
import type { Op, OpFile } from '../../apps/host-kernel/src/dispatch/op';
import type { HostKernelApp } from '../../apps/host-kernel/src/host-kernel.app';
import { cpuOps, faultOps, hwOps, ioasidOps, kvmOps, processOps, vfioOps } from '../../apps/host-kernel/src/ops';
import { EnqcmdDto } from '../../apps/host-kernel/src/cpu/cpu.dto';
import { PageResponseDto } from '../../apps/host-kernel/src/fault/fault.dto';
import { EngineDto, LimitsQuery, PasidQuery, RawDmaDto } from '../../apps/host-kernel/src/hw/hw.dto';
import { BindPgtblDto, InvalidateDto, MapDto, UnmapDto } from '../../apps/host-kernel/src/ioasid/ioasid.dto';
import { EnqcmdsDto, MapPasidDto, MemslotDto, PasidTranslationDto, UnmapPasidDto } from '../../apps/host-kernel/src/kvm/kvm.dto';
import { CreateProcessDto, MmapDto, ReadMemoryQuery, WriteMemoryDto } from '../../apps/host-kernel/src/process/process.dto';
import { AllowIoasidDto, DisallowIoasidDto } from '../../apps/host-kernel/src/vfio/vfio.dto';
import { intParam, intQuery, type Route, route, type RouteCall } from './route';

type H = Route<HostKernelApp>;
type B = Record<string, unknown>;

/**
 * Issues `op` as the route's caller (its `:pid`, if any, must be the caller's own): the bearer rule first, then the
 * arguments (the route's parameters and its body, checked as they are read), as REST's guard runs before its pipes.
 */
function exec<A, R, F extends OpFile>(host: HostKernelApp, c: RouteCall, op: Op<never, A, R, F, never>, args: () => A): Promise<R> {
  const pid = c.params.pid === undefined ? undefined : intParam(c, 'pid');
  const caller = host.authorize(op, c.token, pid);
  return host.dispatcher.exec(op, caller, args());
}

const data = (b: B): Buffer => decodePayload(b.data as string, b.encoding as PayloadEncoding | undefined);
const fd = (c: RouteCall): number => intParam(c, 'fd');
const ioasid = (c: RouteCall): { fd: number; ioasid: number } => ({ fd: fd(c), ioasid: intParam(c, 'ioasid') });
const none = async (p: Promise<unknown>): Promise<undefined> => void (await p);

export const HOST_ROUTES: H[] = [
  route('POST', '/v1/processes', 201, async (h, c) => {
    const { pid, token } = await exec(h, c, processOps.create, () => ({ comm: c.body.comm as string }));
    return { pid, token };
  }, { body: CreateProcessDto }),
  route('GET', '/v1/processes/:pid', 200, (h, c) => h.describeProcess(h.authorize(processOps.get, c.token, intParam(c, 'pid')), intParam(c, 'pid'))),
  route('DELETE', '/v1/processes/:pid', 204, (h, c) => none(exec(h, c, processOps.exit, () => ({ pid: intParam(c, 'pid') })))),
  route('POST', '/v1/processes/:pid/mmap', 201, (h, c) =>
    exec(h, c, processOps.mmap, () => c.body.shared === undefined ? { pid: intParam(c, 'pid'), length: c.body.length as number } : { pid: intParam(c, 'pid'), length: c.body.length as number, shared: c.body.shared as boolean }), { body: MmapDto }),
  route('PUT', '/v1/processes/:pid/memory', 204, (h, c) => none(exec(h, c, processOps.write, () => ({ pid: intParam(c, 'pid'), hva: c.body.hva as number, data: data(c.body) }))), { body: WriteMemoryDto }),
  route('GET', '/v1/processes/:pid/memory', 200, async (h, c) =>
    encodePayload(await exec(h, c, processOps.read, () => ({ pid: intParam(c, 'pid'), hva: intQuery(c, 'hva') as number, length: intQuery(c, 'length') as number })), c.query.encoding as PayloadEncoding | undefined), { query: ReadMemoryQuery }),
  route('DELETE', '/v1/fds/:fd', 204, (h, c) => none(exec(h, c, processOps.close, () => ({ fd: fd(c) })))),
  route('POST', '/v1/processes/:pid/wrmsr', 204, (h, c) => none(exec(h, c, cpuOps.wrmsr, () => ({ pid: intParam(c, 'pid'), msr: c.body.msr as 'IA32_PASID', value: c.body.value as number }))), { body: WrmsrDto }),
  route('POST', '/v1/processes/:pid/enqcmd', 201, (h, c) => exec(h, c, cpuOps.enqcmd, () => ({ pid: intParam(c, 'pid'), deviceFd: c.body.deviceFd as number, descriptor: c.body.descriptor as Descriptor })), { body: EnqcmdDto }),
  route('POST', '/v1/processes/:pid/enqcmds', 201, (h, c) => exec(h, c, cpuOps.enqcmds, () => ({ pid: intParam(c, 'pid'), deviceFd: c.body.deviceFd as number, descriptor: c.body.descriptor as Descriptor })), { body: EnqcmdDto }),

  route('POST', '/v1/ioasid', 201, (h, c) => exec(h, c, ioasidOps.open, () => ({}))),
  route('POST', '/v1/ioasid/:fd/ioasids', 201, (h, c) => exec(h, c, ioasidOps.alloc, () => ({ fd: fd(c) }))),
  route('GET', '/v1/ioasid/:fd/ioasids', 200, (h, c) => exec(h, c, ioasidOps.list, () => ({ fd: fd(c) }))),
  route('GET', '/v1/ioasid/:fd/ioasids/:ioasid', 200, (h, c) => exec(h, c, ioasidOps.info, () => ioasid(c))),
  route('POST', '/v1/ioasid/:fd/fault-queues', 201, (h, c) => exec(h, c, faultOps.alloc, () => ({ fd: fd(c) }))),
  route('DELETE', '/v1/ioasid/:fd/fault-queues/:q', 204, (h, c) => none(exec(h, c, faultOps.destroy, () => ({ fd: fd(c), faultQueue: intParam(c, 'q') })))),
  route('GET', '/v1/ioasid/:fd/fault-queues/:q/groups', 200, (h, c) => exec(h, c, faultOps.read, () => ({ fd: fd(c), faultQueue: intParam(c, 'q') }))),
  route('POST', '/v1/ioasid/:fd/fault-queues/:q/response', 204, (h, c) =>
    none(exec(h, c, faultOps.respond, () => ({ fd: fd(c), faultQueue: intParam(c, 'q'), cookie: c.body.cookie as number, code: c.body.code as never }))), { body: PageResponseDto }),
  route('POST', '/v1/ioasid/:fd/ioasids/:ioasid/pgtbl', 204, (h, c) => none(exec(h, c, ioasidOps.bindPgtbl, () => ({ ...ioasid(c), ...c.body } as never))), { body: BindPgtblDto }),
  route('POST', '/v1/ioasid/:fd/ioasids/:ioasid/map', 201, (h, c) => exec(h, c, ioasidOps.map, () => ({ ...ioasid(c), ...c.body } as never)), { body: MapDto }),
  route('POST', '/v1/ioasid/:fd/ioasids/:ioasid/unmap', 201, (h, c) => exec(h, c, ioasidOps.unmap, () => ({ ...ioasid(c), ...c.body } as never)), { body: UnmapDto }),
  route('POST', '/v1/ioasid/:fd/ioasids/:ioasid/invalidate', 204, (h, c) => none(exec(h, c, ioasidOps.invalidate, () => ({ ...ioasid(c), ...c.body } as never))), { body: InvalidateDto }),
  route('DELETE', '/v1/ioasid/:fd/ioasids/:ioasid', 204, (h, c) => none(exec(h, c, ioasidOps.destroy, () => ioasid(c)))),

  route('GET', '/v1/vfio/devices', 200, (h, c) => exec(h, c, vfioOps.listDevices, () => ({}))),
  route('POST', '/v1/vfio/devices/:bdf/open', 201, (h, c) => exec(h, c, vfioOps.open, () => ({ bdf: c.params.bdf }))),
  route('POST', '/v1/vfio/:fd/allow-ioasid', 204, (h, c) => none(exec(h, c, vfioOps.allowIoasid, () => ({ deviceFd: fd(c), ...c.body } as never))), { body: AllowIoasidDto }),
  route('POST', '/v1/vfio/:fd/disallow-ioasid', 204, (h, c) => none(exec(h, c, vfioOps.disallowIoasid, () => ({ deviceFd: fd(c), ...c.body } as never))), { body: DisallowIoasidDto }),

  route('POST', '/v1/kvm/vms', 201, (h, c) => exec(h, c, kvmOps.createVm, () => ({}))),
  route('POST', '/v1/kvm/:fd/memslots', 204, (h, c) => none(exec(h, c, kvmOps.setMemslot, () => ({ vmFd: fd(c), ...c.body } as never))), { body: MemslotDto }),
  route('POST', '/v1/kvm/:fd/vcpus', 201, (h, c) => exec(h, c, kvmOps.createVcpu, () => ({ vmFd: fd(c) }))),
  route('PUT', '/v1/kvm/:fd/memory', 204, (h, c) => none(exec(h, c, kvmOps.writeGuest, () => ({ vmFd: fd(c), gpa: c.body.gpa as number, data: data(c.body) }))), { body: GuestWriteDto }),
  route('GET', '/v1/kvm/:fd/memory', 200, async (h, c) =>
    encodePayload(await exec(h, c, kvmOps.readGuest, () => ({ vmFd: fd(c), gpa: intQuery(c, 'gpa') as number, length: intQuery(c, 'length') as number })), c.query.encoding as PayloadEncoding | undefined), { query: GuestReadQuery }),
  route('POST', '/v1/kvm/:fd/pasid-translation', 204, (h, c) => none(exec(h, c, kvmOps.pasidTranslation, () => ({ vmFd: fd(c), enabled: c.body.enabled as boolean }))), { body: PasidTranslationDto }),
  route('POST', '/v1/kvm/:fd/map-pasid', 204, (h, c) => none(exec(h, c, kvmOps.mapPasid, () => ({ vmFd: fd(c), ...c.body } as never))), { body: MapPasidDto }),
  route('POST', '/v1/kvm/:fd/unmap-pasid', 204, (h, c) => none(exec(h, c, kvmOps.unmapPasid, () => ({ vmFd: fd(c), vpasid: c.body.vpasid as number }))), { body: UnmapPasidDto }),
  route('POST', '/v1/kvm/:fd/vcpus/:n/wrmsr', 204, (h, c) => none(exec(h, c, kvmOps.vcpuWrmsr, () => ({ vmFd: fd(c), vcpu: intParam(c, 'n'), msr: c.body.msr as 'IA32_PASID', value: c.body.value as number }))), { body: WrmsrDto }),
  route('POST', '/v1/kvm/:fd/vcpus/:n/enqcmd', 201, (h, c) => exec(h, c, kvmOps.vcpuEnqcmd, () => ({ vmFd: fd(c), vcpu: intParam(c, 'n'), deviceFd: c.body.deviceFd as number, descriptor: c.body.descriptor as Descriptor })), { body: EnqcmdDto }),
  route('POST', '/v1/kvm/:fd/vcpus/:n/enqcmds', 201, (h, c) => exec(h, c, kvmOps.vcpuEnqcmds, () => ({ vmFd: fd(c), vcpu: intParam(c, 'n'), ...c.body } as never)), { body: EnqcmdsDto }),

  route('GET', '/v1/hw/pasids', 200, (h, c) => exec(h, c, hwOps.pasids, () => ({ pasid: intQuery(c, 'pasid') })), { query: PasidQuery }),
  route('GET', '/v1/hw/limits', 200, (h, c) => exec(h, c, hwOps.limits, () => ({ pid: intQuery(c, 'pid') })), { query: LimitsQuery }),
  route('GET', '/v1/hw/iommu/faults', 200, (h, c) => exec(h, c, hwOps.faults, () => ({}))),
  route('GET', '/v1/hw/iommu/page-requests', 200, (h, c) => exec(h, c, hwOps.pageRequests, () => ({}))),
  route('POST', '/v1/hw/devices/:bdf/dma', 201, async (h, c) => {
    const r = await exec(h, c, hwOps.dma, () => {
      const b = c.body as B;
      return { ...b, bdf: c.params.bdf, data: b.data === undefined ? undefined : decodePayload(b.data as string) } as never;
    });
    return r.ok ? { data: r.data?.toString('base64') } : { fault: r.fault };
  }, { body: RawDmaDto }),
  route('POST', '/v1/hw/devices/:bdf/engine', 204, (h, c) => none(exec(h, c, hwOps.engine, () => ({ bdf: c.params.bdf, running: c.body.running as boolean }))), { body: EngineDto }),
];
