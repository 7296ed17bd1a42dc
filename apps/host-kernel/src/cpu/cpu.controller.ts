import { Body, Controller, HttpCode, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import type { EnqcmdResult } from '@app/shared/contract/host-kernel';
import { WrmsrDto } from '@app/shared/nest/shared.dto';
import { IntParamPipe } from '@app/shared/nest/validation';
import { Authorize, Caller } from '../dispatch/caller.decorator';
import { Dispatcher } from '../dispatch/dispatcher';
import type { HostCaller } from '../dispatch/op';
import { EnqcmdDto } from './cpu.dto';
import { cpuOps } from './cpu.ops';

/** The instructions a host process executes: WRMSR IA32_PASID, ENQCMD, ENQCMDS. */
@ApiTags('processes')
@ApiBearerAuth()
@Controller({ path: 'processes', version: '1' })
export class CpuController {
  constructor(private readonly host: Dispatcher) {}

  /** WRMSR IA32_PASID for a host process (host SVA: ENQCMD then carries this PASID untranslated). */
  @Post(':pid/wrmsr')
  @HttpCode(204)
  @Authorize(cpuOps.wrmsr)
  async wrmsr(@Caller() caller: HostCaller, @Param('pid', IntParamPipe) pid: number, @Body() dto: WrmsrDto): Promise<void> {
    await this.host.exec(cpuOps.wrmsr, caller, { pid, msr: dto.msr, value: dto.value });
  }

  /** ENQCMD from a host process: the PASID is its IA32_PASID, untranslated (host SVA). */
  @Post(':pid/enqcmd')
  @Authorize(cpuOps.enqcmd)
  enqcmd(@Caller() caller: HostCaller, @Param('pid', IntParamPipe) pid: number, @Body() dto: EnqcmdDto): Promise<EnqcmdResult> {
    return this.host.exec(cpuOps.enqcmd, caller, { pid, deviceFd: dto.deviceFd, descriptor: dto.descriptor });
  }

  /** ENQCMDS from a host process: supervisor-only, so at CPL 3 it is #GP and nothing is submitted. */
  @Post(':pid/enqcmds')
  @Authorize(cpuOps.enqcmds)
  enqcmds(@Caller() caller: HostCaller, @Param('pid', IntParamPipe) pid: number, @Body() dto: EnqcmdDto): Promise<EnqcmdResult> {
    return this.host.exec(cpuOps.enqcmds, caller, { pid, deviceFd: dto.deviceFd, descriptor: dto.descriptor });
  }
}
