import { Body, Controller, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import type { FaultRecord } from '@app/shared/contract/host-kernel';
import { decodePayload } from '@app/shared/payload';
import { Authorize, Caller } from '../dispatch/caller.decorator';
import { Dispatcher } from '../dispatch/dispatcher';
import type { HostCaller } from '../dispatch/op';
import { EngineDto, LimitsQuery, PasidQuery, RawDmaDto } from './hw.dto';
import { hwOps as ops } from './hw.ops';

/** The hardware/admin plane (admin token): the PASID pool, the IOMMU fault log, raw device DMA. */
@ApiTags('hw')
@ApiBearerAuth()
@Controller({ path: 'hw', version: '1' })
export class HwController {
  constructor(private readonly host: Dispatcher) {}

  /** Pool counts, or with `?pasid=P` the state, owner and holders of one host PASID. */
  @Get('pasids')
  @Authorize(ops.pasids)
  pasids(@Caller() caller: HostCaller, @Query() q: PasidQuery): Promise<unknown> {
    return this.host.exec(ops.pasids, caller, { pasid: q.pasid });
  }

  /** The resource limits in force (PASID_LIMIT, PIN_LIMIT_MIB, …) and each running process's usage; `?pid=P` for one. */
  @Get('limits')
  @Authorize(ops.limits)
  limits(@Caller() caller: HostCaller, @Query() q: LimitsQuery): Promise<unknown> {
    return this.host.exec(ops.limits, caller, { pid: q.pid });
  }

  /** The IOMMU fault log, oldest first. */
  @Get('iommu/faults')
  @Authorize(ops.faults)
  faults(@Caller() caller: HostCaller): Promise<FaultRecord[]> {
    return this.host.exec(ops.faults, caller, {});
  }

  /** The host page request queue: depth, requests held, overflows, and every group waiting for an answer. */
  @Get('iommu/page-requests')
  @Authorize(ops.pageRequests)
  pageRequests(@Caller() caller: HostCaller): Promise<unknown> {
    return this.host.exec(ops.pageRequests, caller, {});
  }

  /** A raw device-initiated access, through the IOMMU like any other (a misbehaving device). */
  @Post('devices/:bdf/dma')
  @Authorize(ops.dma)
  async dma(@Caller() caller: HostCaller, @Param('bdf') bdf: string, @Body() dto: RawDmaDto): Promise<unknown> {
    const r = await this.host.exec(ops.dma, caller, { ...dto, bdf, data: dto.data === undefined ? undefined : decodePayload(dto.data) });
    return r.ok ? { data: r.data?.toString('base64') } : { fault: r.fault };
  }

  /** Stalls or resumes a device's engine (to fill its queue, or catch a descriptor in flight). */
  @Post('devices/:bdf/engine')
  @HttpCode(204)
  @Authorize(ops.engine)
  async engine(@Caller() caller: HostCaller, @Param('bdf') bdf: string, @Body() dto: EngineDto): Promise<void> {
    await this.host.exec(ops.engine, caller, { bdf, running: dto.running });
  }
}
