import { Body, Controller, Get, HttpCode, Param, Post, Put, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import type { EnqcmdResult } from '@app/shared/contract/host-kernel';
import { GuestReadQuery, GuestWriteDto, WrmsrDto } from '@app/shared/nest/shared.dto';
import { IntParamPipe } from '@app/shared/nest/validation';
import { decodePayload, encodePayload } from '@app/shared/payload';
import { Authorize, Caller } from '../dispatch/caller.decorator';
import { Dispatcher } from '../dispatch/dispatcher';
import type { HostCaller } from '../dispatch/op';
import { EnqcmdDto, EnqcmdsDto, MapPasidDto, MemslotDto, PasidTranslationDto, UnmapPasidDto } from './kvm.dto';
import { kvmOps as ops } from './kvm.ops';

/** KVM: VM fds with memslots and vCPUs, and the VMCS vPASID→pPASID table ENQCMD translates through. */
@ApiTags('kvm')
@ApiBearerAuth()
@Controller({ path: 'kvm', version: '1' })
export class KvmController {
  constructor(private readonly host: Dispatcher) {}

  /** KVM_CREATE_VM. */
  @Post('vms')
  @Authorize(ops.createVm)
  createVm(@Caller() caller: HostCaller): Promise<{ fd: number }> {
    return this.host.exec(ops.createVm, caller, {});
  }

  /** KVM_SET_USER_MEMORY_REGION: GPA range → the caller's hva range. */
  @Post(':fd/memslots')
  @HttpCode(204)
  @Authorize(ops.setMemslot)
  async memslot(@Caller() caller: HostCaller, @Param('fd', IntParamPipe) vmFd: number, @Body() dto: MemslotDto): Promise<void> {
    await this.host.exec(ops.setMemslot, caller, { vmFd, ...dto });
  }

  /** KVM_CREATE_VCPU: vCPUs are numbered 0, 1, 2, … */
  @Post(':fd/vcpus')
  @Authorize(ops.createVcpu)
  createVcpu(@Caller() caller: HostCaller, @Param('fd', IntParamPipe) vmFd: number): Promise<{ vcpu: number }> {
    return this.host.exec(ops.createVcpu, caller, { vmFd });
  }

  /** Guest-physical write through the memslots (EFAULT outside them, nothing written). */
  @Put(':fd/memory')
  @HttpCode(204)
  @Authorize(ops.writeGuest)
  async writeMemory(@Caller() caller: HostCaller, @Param('fd', IntParamPipe) vmFd: number, @Body() dto: GuestWriteDto): Promise<void> {
    await this.host.exec(ops.writeGuest, caller, { vmFd, gpa: dto.gpa, data: decodePayload(dto.data, dto.encoding) });
  }

  /** Guest-physical read through the memslots. */
  @Get(':fd/memory')
  @Authorize(ops.readGuest)
  async readMemory(@Caller() caller: HostCaller, @Param('fd', IntParamPipe) vmFd: number, @Query() q: GuestReadQuery): Promise<{ data: string }> {
    return encodePayload(await this.host.exec(ops.readGuest, caller, { vmFd, gpa: q.gpa, length: q.length }), q.encoding);
  }

  /** Enables (or disables) the VM's vPASID→pPASID translation for ENQCMD. */
  @Post(':fd/pasid-translation')
  @HttpCode(204)
  @Authorize(ops.pasidTranslation)
  async pasidTranslation(@Caller() caller: HostCaller, @Param('fd', IntParamPipe) vmFd: number, @Body() dto: PasidTranslationDto): Promise<void> {
    await this.host.exec(ops.pasidTranslation, caller, { vmFd, enabled: dto.enabled });
  }

  /** MAP_PASID: vPASID → the ioasid's PASID, validated through the ioasid layer; takes a reference. */
  @Post(':fd/map-pasid')
  @HttpCode(204)
  @Authorize(ops.mapPasid)
  async mapPasid(@Caller() caller: HostCaller, @Param('fd', IntParamPipe) vmFd: number, @Body() dto: MapPasidDto): Promise<void> {
    await this.host.exec(ops.mapPasid, caller, { vmFd, ...dto });
  }

  /** UNMAP_PASID: clears the entry and drops its reference. */
  @Post(':fd/unmap-pasid')
  @HttpCode(204)
  @Authorize(ops.unmapPasid)
  async unmapPasid(@Caller() caller: HostCaller, @Param('fd', IntParamPipe) vmFd: number, @Body() dto: UnmapPasidDto): Promise<void> {
    await this.host.exec(ops.unmapPasid, caller, { vmFd, vpasid: dto.vpasid });
  }

  /** WRMSR on a vCPU (IA32_PASID: bits 19:0 vPASID, bit 31 valid). */
  @Post(':fd/vcpus/:n/wrmsr')
  @HttpCode(204)
  @Authorize(ops.vcpuWrmsr)
  async wrmsr(@Caller() caller: HostCaller, @Param('fd', IntParamPipe) vmFd: number, @Param('n', IntParamPipe) vcpu: number, @Body() dto: WrmsrDto): Promise<void> {
    await this.host.exec(ops.vcpuWrmsr, caller, { vmFd, vcpu, msr: dto.msr, value: dto.value });
  }

  /** ENQCMD from a vCPU: #GP if IA32_PASID is invalid, VM exit → #GP if the vPASID is unmapped, else ZF=0/1. */
  @Post(':fd/vcpus/:n/enqcmd')
  @Authorize(ops.vcpuEnqcmd)
  enqcmd(@Caller() caller: HostCaller, @Param('fd', IntParamPipe) vmFd: number, @Param('n', IntParamPipe) vcpu: number, @Body() dto: EnqcmdDto): Promise<EnqcmdResult> {
    return this.host.exec(ops.vcpuEnqcmd, caller, { vmFd, vcpu, deviceFd: dto.deviceFd, descriptor: dto.descriptor });
  }

  /** ENQCMDS on a vCPU (guest kernel mode): the PASID comes from the descriptor and is translated like ENQCMD's. */
  @Post(':fd/vcpus/:n/enqcmds')
  @Authorize(ops.vcpuEnqcmds)
  enqcmds(@Caller() caller: HostCaller, @Param('fd', IntParamPipe) vmFd: number, @Param('n', IntParamPipe) vcpu: number, @Body() dto: EnqcmdsDto): Promise<EnqcmdResult> {
    return this.host.exec(ops.vcpuEnqcmds, caller, { vmFd, vcpu, ...dto });
  }
}
