import { Body, Controller, Get, HttpCode, Param, Post, Put, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import type { EnqcmdResult } from '@app/shared/contract/host-kernel';
import { CallerId } from '@app/shared/nest/auth';
import { IntParamPipe } from '@app/shared/nest/validation';
import { decodePayload, encodePayload } from '@app/shared/payload';
import { GuestReadQuery, GuestWriteDto, WrmsrDto } from '@app/shared/nest/shared.dto';
import { KernelService } from '../kernel.service';
import { EnqcmdDto, EnqcmdsDto, MapPasidDto, MemslotDto, PasidTranslationDto, UnmapPasidDto } from './kvm.dto';

/** KVM: VM fds with memslots and vCPUs, and the VMCS vPASID→pPASID table ENQCMD translates through. */
@ApiTags('kvm')
@ApiBearerAuth()
@Controller({ path: 'kvm', version: '1' })
export class KvmController {
  constructor(private readonly ks: KernelService) {}

  /** KVM_CREATE_VM. */
  @Post('vms')
  createVm(@CallerId() pid: number): Promise<{ fd: number }> {
    return this.ks.exec({ operation: 'kvm.create_vm', actor: `pid:${pid}`, object: (r) => `fd:${pid}/${r.fd}` }, (k) => ({ fd: k.createVm(pid) }));
  }

  /** KVM_SET_USER_MEMORY_REGION: GPA range → the caller's hva range. */
  @Post(':fd/memslots')
  @HttpCode(204)
  async memslot(@CallerId() pid: number, @Param('fd', IntParamPipe) fd: number, @Body() dto: MemslotDto): Promise<void> {
    await this.ks.exec({ operation: 'kvm.set_memslot', actor: `pid:${pid}`, object: `fd:${pid}/${fd}`, args: dto }, (k) => k.addMemslot(pid, fd, dto));
  }

  /** KVM_CREATE_VCPU: vCPUs are numbered 0, 1, 2, … */
  @Post(':fd/vcpus')
  createVcpu(@CallerId() pid: number, @Param('fd', IntParamPipe) fd: number): Promise<{ vcpu: number }> {
    return this.ks.exec({ operation: 'kvm.create_vcpu', actor: `pid:${pid}`, object: `fd:${pid}/${fd}` }, (k) => ({ vcpu: k.createVcpu(pid, fd) }));
  }

  /** Guest-physical write through the memslots (EFAULT outside them, nothing written). */
  @Put(':fd/memory')
  @HttpCode(204)
  async writeMemory(@CallerId() pid: number, @Param('fd', IntParamPipe) fd: number, @Body() dto: GuestWriteDto): Promise<void> {
    const data = decodePayload(dto.data, dto.encoding);
    await this.ks.exec({ operation: 'kvm.write_guest', actor: `pid:${pid}`, args: { gpa: dto.gpa, length: data.length } }, (k) =>
      k.writeGuestMemory(pid, fd, dto.gpa, data),
    );
  }

  /** Guest-physical read through the memslots. */
  @Get(':fd/memory')
  readMemory(@CallerId() pid: number, @Param('fd', IntParamPipe) fd: number, @Query() q: GuestReadQuery): { data: string } {
    return encodePayload(this.ks.kernel.readGuestMemory(pid, fd, q.gpa, q.length), q.encoding);
  }

  /** Enables (or disables) the VM's vPASID→pPASID translation for ENQCMD. */
  @Post(':fd/pasid-translation')
  @HttpCode(204)
  async pasidTranslation(@CallerId() pid: number, @Param('fd', IntParamPipe) fd: number, @Body() dto: PasidTranslationDto): Promise<void> {
    await this.ks.exec({ operation: 'kvm.pasid_translation', actor: `pid:${pid}`, object: `fd:${pid}/${fd}`, args: dto }, (k) =>
      k.setPasidTranslation(pid, fd, dto.enabled),
    );
  }

  /** MAP_PASID: vPASID → the ioasid's PASID, validated through the ioasid layer; takes a reference. */
  @Post(':fd/map-pasid')
  @HttpCode(204)
  async mapPasid(@CallerId() pid: number, @Param('fd', IntParamPipe) fd: number, @Body() dto: MapPasidDto): Promise<void> {
    await this.ks.exec({ operation: 'kvm.map_pasid', actor: `pid:${pid}`, object: `ioasid:${dto.ioasid}`, args: { vmFd: fd, ...dto } }, (k) =>
      k.mapPasid(pid, fd, dto),
    );
  }

  /** UNMAP_PASID: clears the entry and drops its reference. */
  @Post(':fd/unmap-pasid')
  @HttpCode(204)
  async unmapPasid(@CallerId() pid: number, @Param('fd', IntParamPipe) fd: number, @Body() dto: UnmapPasidDto): Promise<void> {
    await this.ks.exec(
      { operation: 'kvm.unmap_pasid', actor: `pid:${pid}`, object: (ppasid) => `ioasid:${ppasid}`, args: { vmFd: fd, ...dto }, recordResult: (ppasid) => ({ ioasid: ppasid }) },
      (k) => k.unmapPasid(pid, fd, dto.vpasid),
    );
  }

  /** WRMSR on a vCPU (IA32_PASID: bits 19:0 vPASID, bit 31 valid). */
  @Post(':fd/vcpus/:n/wrmsr')
  @HttpCode(204)
  async wrmsr(@CallerId() pid: number, @Param('fd', IntParamPipe) fd: number, @Param('n', IntParamPipe) n: number, @Body() dto: WrmsrDto): Promise<void> {
    await this.ks.exec({ operation: 'kvm.vcpu_wrmsr', actor: `pid:${pid}`, object: `vcpu:${pid}/${fd}/${n}`, args: dto }, (k) =>
      k.vcpuWrmsr(pid, fd, n, dto.msr, dto.value),
    );
  }

  /** ENQCMD from a vCPU: #GP if IA32_PASID is invalid, VM exit → #GP if the vPASID is unmapped, else ZF=0/1. */
  @Post(':fd/vcpus/:n/enqcmd')
  enqcmd(@CallerId() pid: number, @Param('fd', IntParamPipe) fd: number, @Param('n', IntParamPipe) n: number, @Body() dto: EnqcmdDto): Promise<EnqcmdResult> {
    return this.ks.exec({ operation: 'kvm.vcpu_enqcmd', actor: `pid:${pid}`, object: `vcpu:${pid}/${fd}/${n}`, args: dto }, (k) =>
      k.vcpuEnqcmd(pid, fd, n, dto.deviceFd, dto.descriptor),
    );
  }

  /** ENQCMDS on a vCPU (guest kernel mode): the PASID comes from the descriptor and is translated like ENQCMD's. */
  @Post(':fd/vcpus/:n/enqcmds')
  enqcmds(@CallerId() pid: number, @Param('fd', IntParamPipe) fd: number, @Param('n', IntParamPipe) n: number, @Body() dto: EnqcmdsDto): Promise<EnqcmdResult> {
    return this.ks.exec({ operation: 'kvm.vcpu_enqcmds', actor: `pid:${pid}`, object: `vcpu:${pid}/${fd}/${n}`, args: dto }, (k) =>
      k.vcpuEnqcmds(pid, fd, n, dto.deviceFd, dto.descriptor, dto.pasid, dto.privileged),
    );
  }
}
