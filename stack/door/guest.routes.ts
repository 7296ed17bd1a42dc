// A guest's console routes on the in-process door (no token: the console is the guest OS's own shell).
import { decodePayload, encodePayload } from '@app/shared/payload';
import type { SubmitRequest } from '../../apps/guest/src/drivers/accel-driver';
import type { GuestApp } from '../../apps/guest/src/guest.app';
import { CreateProcessDto, MmapDto, MunmapDto, ReadQuery, WriteDto } from '../../apps/guest/src/console/process.dto';
import { SubmitDto } from '../../apps/guest/src/console/submit.dto';
import { SvaBindDto } from '../../apps/guest/src/console/sva.dto';
import { intParam, intQuery, type Route, route } from './route';

type G = Route<GuestApp>;

export const GUEST_ROUTES: G[] = [
  route('GET', '/v1/status', 200, (g) => g.status()),
  route('POST', '/v1/processes', 201, (g, c) => g.createProcess(c.body.name as string), { body: CreateProcessDto }),
  route('POST', '/v1/processes/:pid/mmap', 201, (g, c) => g.mmap(intParam(c, 'pid'), c.body.length as number, (c.body.populate as boolean | undefined) ?? false), { body: MmapDto }),
  route('POST', '/v1/processes/:pid/munmap', 204, (g, c) => g.munmap(intParam(c, 'pid'), c.body.gva as number, c.body.length as number), { body: MunmapDto }),
  route('PUT', '/v1/processes/:pid/memory', 204, (g, c) => g.writeMemory(intParam(c, 'pid'), c.body.gva as number, decodePayload(c.body.data as string)), { body: WriteDto }),
  route('GET', '/v1/processes/:pid/memory', 200, async (g, c) => encodePayload(await g.readMemory(intParam(c, 'pid'), intQuery(c, 'gva') as number, intQuery(c, 'length') as number)), { query: ReadQuery }),
  route('POST', '/v1/sva/bind', 201, (g, c) => g.bind(c.body.pid as number, c.body.vrid as number), { body: SvaBindDto }),
  route('POST', '/v1/sva/unbind', 204, (g, c) => g.unbind(c.body.pid as number, c.body.vrid as number), { body: SvaBindDto }),
  route('POST', '/v1/processes/:pid/submit', 201, (g, c) => g.submit(intParam(c, 'pid'), { vrid: c.body.vrid as number, descriptor: c.body.descriptor as SubmitRequest, vcpu: c.body.vcpu as number | undefined }), {
    body: SubmitDto,
  }),
];
