import { Body, Controller, Get, HttpCode, Inject, Param, Post, Put } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { KernelError } from '@app/shared/errno';
import type { Journal } from '@app/shared/journal/journal';
import { JOURNAL } from '@app/shared/nest/tokens';
import { IntParamPipe } from '@app/shared/nest/validation';
import { VmService } from '../vm/vm.service';
import { ContextDto, InvalidateDto, PageResponseDto } from './viommu.dto';
import type { InvalidationResult, VirtualFault, VirtualPageRequest } from './viommu.types';

/** The guest's scalable-mode vIOMMU: context (PASID directory) registration, invalidation queue, faults. */
@ApiTags('viommu')
@ApiBearerAuth()
@Controller({ path: 'vms/:id/viommu', version: '1' })
export class ViommuController {
  constructor(
    private readonly vms: VmService,
    @Inject(JOURNAL) private readonly journal: Journal,
  ) {}

  /** Registers the PASID directory of a virtual RID (the scalable-mode context entry). */
  @Put('context/:vrid')
  @HttpCode(204)
  async context(@Param('id', IntParamPipe) id: number, @Param('vrid', IntParamPipe) vrid: number, @Body() dto: ContextDto): Promise<void> {
    const vm = this.vms.running(id);
    await this.journal.run({ operation: 'viommu.set_context', actor: `vm:${id}`, object: `vrid:${id}/${vrid}`, args: dto }, () =>
      vm.viommu.setContext(vrid, dto.pasidDirGpa),
    );
  }

  /** The invalidation queue: pasid-cache mirrors guest PASID entries on the host; `wait` completes after all before it. */
  @Post('invalidate')
  invalidate(@Param('id', IntParamPipe) id: number, @Body() dto: InvalidateDto): Promise<InvalidationResult> {
    const vm = this.vms.running(id);
    return this.journal.run(
      { operation: 'viommu.invalidate', actor: `vm:${id}`, object: `vm:${id}`, args: dto, recordResult: (r) => ({ completed: r.completed, faults: r.faults.length }) },
      () => vm.viommu.invalidate(dto.descriptors),
    );
  }

  /** The vIOMMU fault log (virtual RIDs and vPASIDs only). */
  @Get('faults')
  faults(@Param('id', IntParamPipe) id: number): VirtualFault[] {
    return this.vms.running(id).viommu.faults();
  }

  @Get('page-requests')
  pageRequests(@Param('id', IntParamPipe) id: number): VirtualPageRequest[] {
    return this.vms.running(id).viommu.pageRequests();
  }

  /**
   * Answers a page request the vIOMMU reported. The DSA-like devices modelled on the host do not
   * block on faults, so nothing forwards a response to the host yet (see docs/): an unknown request is ENOENT.
   */
  @Post('page-response')
  @HttpCode(204)
  async pageResponse(@Param('id', IntParamPipe) id: number, @Body() dto: PageResponseDto): Promise<void> {
    const vm = this.vms.running(id);
    await this.journal.run({ operation: 'viommu.page_response', actor: `vm:${id}`, args: dto }, async () => {
      const pending = vm.viommu.pageRequests().find((p) => p.seq === dto.seq);
      if (!pending || pending.vrid !== dto.vrid || pending.vpasid !== dto.vpasid)
        throw new KernelError('ENOENT', `no outstanding page request ${dto.seq} for vrid 0x${dto.vrid.toString(16)} vpasid ${dto.vpasid}`);
      vm.viommu.pageResponse(dto.seq, dto.success);
    });
  }
}
