import { Body, Controller, Delete, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import type { IoasidInfo, IoasidState, PgtblSpec } from '@app/shared/contract/host-kernel';
import { KernelError } from '@app/shared/errno';
import { CallerId } from '@app/shared/nest/auth';
import { IntParamPipe } from '@app/shared/nest/validation';
import { KernelService } from '../kernel.service';
import { BindPgtblDto, InvalidateDto, MapDto, UnmapDto } from './ioasid.dto';

/** /dev/ioasid: one fd multiplexes many ioasids, each a host PASID with a page table. */
@ApiTags('ioasid')
@ApiBearerAuth()
@Controller({ path: 'ioasid', version: '1' })
export class IoasidController {
  constructor(private readonly ks: KernelService) {}

  /** open("/dev/ioasid"). */
  @Post()
  open(@CallerId() pid: number): Promise<{ fd: number }> {
    return this.ks.exec({ operation: 'ioasid.open', actor: `pid:${pid}`, object: (r) => `fd:${pid}/${r.fd}` }, (k) => ({ fd: k.openIoasid(pid) }));
  }

  /** ALLOC: a new ioasid whose id is a host PASID from the global pool, owned by this fd. */
  @Post(':fd/ioasids')
  alloc(@CallerId() pid: number, @Param('fd', IntParamPipe) fd: number): Promise<{ ioasid: number }> {
    return this.ks.exec({ operation: 'ioasid.alloc', actor: `pid:${pid}`, args: { fd }, object: (r) => `ioasid:${r.ioasid}` }, (k) => ({
      ioasid: k.alloc(pid, fd),
    }));
  }

  @Get(':fd/ioasids')
  list(@CallerId() pid: number, @Param('fd', IntParamPipe) fd: number): Array<{ ioasid: number; state: IoasidState }> {
    return this.ks.kernel.list(pid, fd);
  }

  /** State, page-table kind, refcount and holders by kind. */
  @Get(':fd/ioasids/:ioasid')
  info(@CallerId() pid: number, @Param('fd', IntParamPipe) fd: number, @Param('ioasid', IntParamPipe) ioasid: number): IoasidInfo {
    return this.ks.kernel.info(pid, fd, ioasid);
  }

  /** BIND_PGTBL: give the ioasid its page table (mm, iova, or nested over an iova parent). */
  @Post(':fd/ioasids/:ioasid/pgtbl')
  @HttpCode(204)
  async bind(
    @CallerId() pid: number,
    @Param('fd', IntParamPipe) fd: number,
    @Param('ioasid', IntParamPipe) ioasid: number,
    @Body() dto: BindPgtblDto,
  ): Promise<void> {
    await this.ks.exec({ operation: 'ioasid.bind_pgtbl', actor: `pid:${pid}`, object: `ioasid:${ioasid}`, args: { fd, ...dto } }, (k) =>
      k.bindPgtbl(pid, fd, ioasid, toSpec(dto)),
    );
  }

  /** MAP (iommufd IOAS_MAP rules): page aligned, no overlap, pins the frames behind the hva. */
  @Post(':fd/ioasids/:ioasid/map')
  map(
    @CallerId() pid: number,
    @Param('fd', IntParamPipe) fd: number,
    @Param('ioasid', IntParamPipe) ioasid: number,
    @Body() dto: MapDto,
  ): Promise<{ iova: number }> {
    return this.ks.exec({ operation: 'ioasid.map', actor: `pid:${pid}`, object: `ioasid:${ioasid}`, args: { fd, ...dto } }, (k) => ({
      iova: k.map(pid, fd, ioasid, dto),
    }));
  }

  /** UNMAP whole areas only (a partial area is ENOENT); `{all:true}` unmaps everything. */
  @Post(':fd/ioasids/:ioasid/unmap')
  unmap(
    @CallerId() pid: number,
    @Param('fd', IntParamPipe) fd: number,
    @Param('ioasid', IntParamPipe) ioasid: number,
    @Body() dto: UnmapDto,
  ): Promise<{ unmapped: number }> {
    const range = dto.all ? ({ all: true } as const) : { iova: dto.iova as number, length: dto.length as number };
    return this.ks.exec({ operation: 'ioasid.unmap', actor: `pid:${pid}`, object: `ioasid:${ioasid}`, args: { fd, ...range } }, (k) => ({
      unmapped: k.unmap(pid, fd, ioasid, range),
    }));
  }

  /** Flush the IOTLB for this ioasid (all, or a range): a changed guest table is seen only after this. */
  @Post(':fd/ioasids/:ioasid/invalidate')
  @HttpCode(204)
  async invalidate(
    @CallerId() pid: number,
    @Param('fd', IntParamPipe) fd: number,
    @Param('ioasid', IntParamPipe) ioasid: number,
    @Body() dto: InvalidateDto,
  ): Promise<void> {
    const range = dto.length === undefined ? undefined : { iova: dto.iova as number, length: dto.length };
    await this.ks.exec({ operation: 'ioasid.invalidate', actor: `pid:${pid}`, object: `ioasid:${ioasid}`, args: { fd, ...range } }, (k) =>
      k.invalidate(pid, fd, ioasid, range),
    );
  }

  /** DESTROY: wipe, block every route, park the PASID until its last holder lets go. */
  @Delete(':fd/ioasids/:ioasid')
  @HttpCode(204)
  async destroy(@CallerId() pid: number, @Param('fd', IntParamPipe) fd: number, @Param('ioasid', IntParamPipe) ioasid: number): Promise<void> {
    await this.ks.exec({ operation: 'ioasid.destroy', actor: `pid:${pid}`, object: `ioasid:${ioasid}`, args: { fd } }, (k) =>
      k.destroy(pid, fd, ioasid),
    );
  }
}

function toSpec(dto: BindPgtblDto): PgtblSpec {
  if (dto.kind === 'nested') return { kind: 'nested', parent: dto.parent as number, ...(dto.root === undefined ? {} : { root: dto.root }) };
  if (dto.parent !== undefined || dto.root !== undefined)
    throw new KernelError('EINVAL', `parent and root are only for kind "nested", not "${dto.kind}"`);
  return { kind: dto.kind };
}
