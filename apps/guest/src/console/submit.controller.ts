import { Body, Controller, Param, Post } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { IntParamPipe } from '@app/shared/nest/validation';
import { GuestService } from '../guest.service';
import type { SubmitResult } from '../drivers/accel-driver';
import { SubmitDto } from './submit.dto';

/** The accelerator driver: IA32_PASID = the process's vPASID, ENQCMD (retry on ZF=1), poll the completion record. */
@ApiTags('accelerator')
@Controller({ path: 'processes', version: '1' })
export class SubmitController {
  constructor(private readonly guest: GuestService) {}

  @Post(':pid/submit')
  submit(@Param('pid', IntParamPipe) pid: number, @Body() dto: SubmitDto): Promise<SubmitResult> {
    return this.guest.app.submit(pid, { vrid: dto.vrid, descriptor: dto.descriptor, vcpu: dto.vcpu });
  }
}
