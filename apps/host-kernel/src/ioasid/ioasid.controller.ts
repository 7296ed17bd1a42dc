import { Body, Controller, Delete, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import type { IoasidInfo, IoasidState } from '@app/shared/contract/host-kernel';
import { IntParamPipe } from '@app/shared/nest/validation';
import { Authorize, Caller } from '../dispatch/caller.decorator';
import { Dispatcher } from '../dispatch/dispatcher';
import type { HostCaller } from '../dispatch/op';
import { BindPgtblDto, InvalidateDto, MapDto, UnmapDto } from './ioasid.dto';
import { ioasidOps as ops } from './ioasid.ops';

/** /dev/ioasid: one fd multiplexes many ioasids, each a host PASID with a page table. */
@ApiTags('ioasid')
@ApiBearerAuth()
@Controller({ path: 'ioasid', version: '1' })
export class IoasidController {
  constructor(private readonly host: Dispatcher) {}

  /** open("/dev/ioasid"). */
  @Post()
  @Authorize(ops.open)
  open(@Caller() caller: HostCaller): Promise<{ fd: number }> {
    return this.host.exec(ops.open, caller, {});
  }

  /** ALLOC: a new ioasid whose id is a host PASID from the global pool, owned by this fd. */
  @Post(':fd/ioasids')
  @Authorize(ops.alloc)
  alloc(@Caller() caller: HostCaller, @Param('fd', IntParamPipe) fd: number): Promise<{ ioasid: number }> {
    return this.host.exec(ops.alloc, caller, { fd });
  }

  @Get(':fd/ioasids')
  @Authorize(ops.list)
  list(@Caller() caller: HostCaller, @Param('fd', IntParamPipe) fd: number): Promise<Array<{ ioasid: number; state: IoasidState }>> {
    return this.host.exec(ops.list, caller, { fd });
  }

  /** State, page-table kind, refcount and holders by kind. */
  @Get(':fd/ioasids/:ioasid')
  @Authorize(ops.info)
  info(@Caller() caller: HostCaller, @Param('fd', IntParamPipe) fd: number, @Param('ioasid', IntParamPipe) ioasid: number): Promise<IoasidInfo> {
    return this.host.exec(ops.info, caller, { fd, ioasid });
  }

  /** BIND_PGTBL: give the ioasid its page table (mm, iova, or nested over an iova parent). */
  @Post(':fd/ioasids/:ioasid/pgtbl')
  @HttpCode(204)
  @Authorize(ops.bindPgtbl)
  async bind(@Caller() caller: HostCaller, @Param('fd', IntParamPipe) fd: number, @Param('ioasid', IntParamPipe) ioasid: number, @Body() dto: BindPgtblDto): Promise<void> {
    await this.host.exec(ops.bindPgtbl, caller, { fd, ioasid, ...dto });
  }

  /** MAP (iommufd IOAS_MAP rules): page aligned, no overlap, pins the frames behind the hva. */
  @Post(':fd/ioasids/:ioasid/map')
  @Authorize(ops.map)
  map(@Caller() caller: HostCaller, @Param('fd', IntParamPipe) fd: number, @Param('ioasid', IntParamPipe) ioasid: number, @Body() dto: MapDto): Promise<{ iova: number }> {
    return this.host.exec(ops.map, caller, { fd, ioasid, ...dto });
  }

  /** UNMAP whole areas only (a partial area is ENOENT); `{all:true}` unmaps everything. */
  @Post(':fd/ioasids/:ioasid/unmap')
  @Authorize(ops.unmap)
  unmap(@Caller() caller: HostCaller, @Param('fd', IntParamPipe) fd: number, @Param('ioasid', IntParamPipe) ioasid: number, @Body() dto: UnmapDto): Promise<{ unmapped: number }> {
    return this.host.exec(ops.unmap, caller, { fd, ioasid, ...dto });
  }

  /** Flush the IOTLB for this ioasid (all, or a range): a changed guest table is seen only after this. */
  @Post(':fd/ioasids/:ioasid/invalidate')
  @HttpCode(204)
  @Authorize(ops.invalidate)
  async invalidate(@Caller() caller: HostCaller, @Param('fd', IntParamPipe) fd: number, @Param('ioasid', IntParamPipe) ioasid: number, @Body() dto: InvalidateDto): Promise<void> {
    await this.host.exec(ops.invalidate, caller, { fd, ioasid, ...dto });
  }

  /** DESTROY: wipe, block every route, park the PASID until its last holder lets go. */
  @Delete(':fd/ioasids/:ioasid')
  @HttpCode(204)
  @Authorize(ops.destroy)
  async destroy(@Caller() caller: HostCaller, @Param('fd', IntParamPipe) fd: number, @Param('ioasid', IntParamPipe) ioasid: number): Promise<void> {
    await this.host.exec(ops.destroy, caller, { fd, ioasid });
  }
}
