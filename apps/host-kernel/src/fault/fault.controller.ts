import { Body, Controller, Delete, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { IntParamPipe } from '@app/shared/nest/validation';
import { Authorize, Caller } from '../dispatch/caller.decorator';
import { Dispatcher } from '../dispatch/dispatcher';
import type { HostCaller } from '../dispatch/op';
import type { PageResponseCode } from '../ioasid/pgtbl';
import { PageResponseDto } from './fault.dto';
import type { FaultGroupView } from './fault-queue';
import { faultOps as ops } from './fault.ops';

/** Fault queues of an ioasid fd (the iommufd FAULT object): where nested page tables' page requests wait for an answer. */
@ApiTags('fault queues')
@ApiBearerAuth()
@Controller({ path: 'ioasid', version: '1' })
export class FaultController {
  constructor(private readonly host: Dispatcher) {}

  /** A new fault queue; bind nested page tables with it (BIND_PGTBL `faultQueue`). */
  @Post(':fd/fault-queues')
  @Authorize(ops.alloc)
  alloc(@Caller() caller: HostCaller, @Param('fd', IntParamPipe) fd: number): Promise<{ faultQueue: number }> {
    return this.host.exec(ops.alloc, caller, { fd });
  }

  /** Destroys the queue (EBUSY while a page table uses it). */
  @Delete(':fd/fault-queues/:q')
  @HttpCode(204)
  @Authorize(ops.destroy)
  async destroy(@Caller() caller: HostCaller, @Param('fd', IntParamPipe) fd: number, @Param('q', IntParamPipe) faultQueue: number): Promise<void> {
    await this.host.exec(ops.destroy, caller, { fd, faultQueue });
  }

  /** Every group not read yet, whole; each gets its response cookie now (a read is journaled: it delivers). */
  @Get(':fd/fault-queues/:q/groups')
  @Authorize(ops.read)
  groups(@Caller() caller: HostCaller, @Param('fd', IntParamPipe) fd: number, @Param('q', IntParamPipe) faultQueue: number): Promise<FaultGroupView[]> {
    return this.host.exec(ops.read, caller, { fd, faultQueue });
  }

  /** Answers the group a cookie names: `success` or `invalid` (anything else is EINVAL and the group stays pending). */
  @Post(':fd/fault-queues/:q/response')
  @HttpCode(204)
  @Authorize(ops.respond)
  async respond(@Caller() caller: HostCaller, @Param('fd', IntParamPipe) fd: number, @Param('q', IntParamPipe) faultQueue: number, @Body() dto: PageResponseDto): Promise<void> {
    await this.host.exec(ops.respond, caller, { fd, faultQueue, cookie: dto.cookie, code: dto.code as PageResponseCode });
  }
}
