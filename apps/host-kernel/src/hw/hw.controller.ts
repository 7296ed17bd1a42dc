import { Body, Controller, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import type { FaultRecord } from '@app/shared/contract/host-kernel';
import { Auth } from '@app/shared/nest/auth';
import { decodePayload } from '@app/shared/payload';
import { KernelService } from '../kernel.service';
import { EngineDto, PasidQuery, RawDmaDto } from './hw.dto';

/** The hardware/admin plane (admin token): the PASID pool, the IOMMU fault log, raw device DMA. */
@ApiTags('hw')
@ApiBearerAuth()
@Auth('admin')
@Controller({ path: 'hw', version: '1' })
export class HwController {
  constructor(private readonly ks: KernelService) {}

  /** Pool counts, or with `?pasid=P` the state, owner and holders of one host PASID. */
  @Get('pasids')
  pasids(@Query() q: PasidQuery): unknown {
    return q.pasid === undefined ? this.ks.kernel.pasidPool() : this.ks.kernel.pasidInfo(q.pasid);
  }

  /** The IOMMU fault log, oldest first. */
  @Get('iommu/faults')
  faults(): FaultRecord[] {
    return this.ks.kernel.faults();
  }

  /** A raw device-initiated access, through the IOMMU like any other (a misbehaving device). */
  @Post('devices/:bdf/dma')
  dma(@Param('bdf') bdf: string, @Body() dto: RawDmaDto): Promise<unknown> {
    return this.ks.exec({ operation: 'hw.dma', actor: 'admin', object: `device:${bdf}`, args: { ...dto, data: dto.data ? `${dto.data.length}b64` : undefined } }, (k) => {
      const data = dto.data === undefined ? undefined : decodePayload(dto.data);
      const r = k.deviceDma(bdf, { pasid: dto.pasid ?? null, address: dto.address, length: dto.length, write: dto.write, data, privileged: dto.privileged ?? false });
      return r.ok ? { data: r.data ? r.data.toString('base64') : undefined } : { fault: r.fault };
    });
  }

  /** Stalls or resumes a device's engine (to fill its queue, or catch a descriptor in flight). */
  @Post('devices/:bdf/engine')
  @HttpCode(204)
  async engine(@Param('bdf') bdf: string, @Body() dto: EngineDto): Promise<void> {
    await this.ks.exec({ operation: 'hw.engine', actor: 'admin', object: `device:${bdf}`, args: dto }, (k) => k.setEngine(bdf, dto.running));
  }
}
