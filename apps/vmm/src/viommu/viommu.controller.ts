import { Body, Controller, Get, HttpCode, Param, Post, Put } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { IntParamPipe } from '@app/shared/nest/validation';
import { Caller } from '../caller.decorator';
import type { VmmCaller } from '../vmm-caller';
import { ContextDto, InvalidateDto, PageResponseDto } from './viommu.dto';
import { ViommuOps } from './viommu-ops';
import type { InvalidationResult, VirtualFault, VirtualPageRequest } from './viommu.types';

/** The guest's scalable-mode vIOMMU: context (PASID directory) registration, invalidation queue, faults, page requests. */
@ApiTags('viommu')
@ApiBearerAuth()
@Controller({ path: 'vms/:id/viommu', version: '1' })
export class ViommuController {
  constructor(private readonly viommu: ViommuOps) {}

  /** Registers the PASID directory of a virtual RID (the scalable-mode context entry). */
  @Put('context/:vrid')
  @HttpCode(204)
  context(@Caller() caller: VmmCaller, @Param('id', IntParamPipe) id: number, @Param('vrid', IntParamPipe) vrid: number, @Body() dto: ContextDto): Promise<void> {
    return this.viommu.setContext(caller, id, vrid, dto.pasidDirGpa);
  }

  /** The invalidation queue: pasid-cache mirrors guest PASID entries on the host; `wait` completes after all before it. */
  @Post('invalidate')
  invalidate(@Caller() caller: VmmCaller, @Param('id', IntParamPipe) id: number, @Body() dto: InvalidateDto): Promise<InvalidationResult> {
    return this.viommu.invalidate(caller, id, dto.descriptors);
  }

  /** The vIOMMU fault log (virtual RIDs and vPASIDs only). */
  @Get('faults')
  faults(@Caller() caller: VmmCaller, @Param('id', IntParamPipe) id: number): VirtualFault[] {
    return this.viommu.faults(caller, id);
  }

  /** The vIOMMU page request queue: every group waiting for the guest's answer (virtual ids only). */
  @Get('page-requests')
  pageRequests(@Caller() caller: VmmCaller, @Param('id', IntParamPipe) id: number): VirtualPageRequest[] {
    return this.viommu.pageRequests(caller, id);
  }

  /** A page group response: answers exactly the oldest waiting group of (vrid, vpasid, grpid) (ENOENT when none). */
  @Post('page-response')
  @HttpCode(204)
  pageResponse(@Caller() caller: VmmCaller, @Param('id', IntParamPipe) id: number, @Body() dto: PageResponseDto): Promise<void> {
    return this.viommu.pageResponse(caller, id, { vrid: dto.vrid, vpasid: dto.vpasid, grpid: dto.grpid, code: dto.code });
  }
}
