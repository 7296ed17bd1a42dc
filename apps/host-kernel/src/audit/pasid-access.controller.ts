import { Controller, Get, Inject, Param, Req } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import type { Request } from 'express';
import type { Journal } from '@app/shared/journal/journal';
import { Auth } from '@app/shared/nest/auth';
import { authorizeAudit } from '@app/shared/nest/audit.controller';
import { APP_CONFIG, JOURNAL } from '@app/shared/nest/tokens';
import { IntParamPipe } from '@app/shared/nest/validation';
import type { HostKernelConfig } from '../config';
import { type PasidEpoch, readPasidAccess } from './pasid-access';

/** Audit (operator plane): who had access to a host PASID, from when to when. */
@ApiTags('audit')
@Auth('none')
@Controller({ path: 'audit', version: '1' })
export class PasidAccessController {
  constructor(
    @Inject(APP_CONFIG) private readonly config: HostKernelConfig,
    @Inject(JOURNAL) private readonly journal: Journal,
  ) {}

  /**
   * Every allocation epoch of host PASID P (ALLOC … freed) with its holders: device routes
   * (ALLOW … DISALLOW) and KVM vPASID entries (MAP_PASID … UNMAP_PASID); DESTROY ends all access.
   */
  @Get('pasids/:pasid')
  async access(@Param('pasid', IntParamPipe) pasid: number, @Req() req: Request): Promise<PasidEpoch[]> {
    authorizeAudit(this.config, req);
    return readPasidAccess(this.journal, pasid);
  }
}
