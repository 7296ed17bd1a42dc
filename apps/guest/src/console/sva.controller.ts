import { Body, Controller, HttpCode, Post } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { GuestService } from '../guest.service';
import { SvaBindDto } from './sva.dto';

/** The vIOMMU SVA driver (iommu_sva_bind_device): a vPASID per process, its PASID entry, invalidate + wait. */
@ApiTags('sva')
@Controller({ path: 'sva', version: '1' })
export class SvaController {
  constructor(private readonly guest: GuestService) {}

  @Post('bind')
  bind(@Body() dto: SvaBindDto): Promise<{ vpasid: number }> {
    return this.guest.app.bind(dto.pid, dto.vrid);
  }

  @Post('unbind')
  @HttpCode(204)
  unbind(@Body() dto: SvaBindDto): Promise<void> {
    return this.guest.app.unbind(dto.pid, dto.vrid);
  }
}
