import { Body, Controller, Delete, Get, HttpCode, Inject, Param, Post, Put, Query, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiProperty, ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import type { AuditPeers } from '@app/shared/audit/peers';
import type { EnqcmdResult } from '@app/shared/contract/host-kernel';
import { Auth } from '@app/shared/nest/auth';
import { openEventStream, sseSink } from '@app/shared/nest/event-stream';
import { GuestReadQuery, GuestWriteDto, WrmsrDto } from '@app/shared/nest/shared.dto';
import { AUDIT_PEERS } from '@app/shared/nest/tokens';
import { IntParamPipe } from '@app/shared/nest/validation';
import { decodePayload, encodePayload } from '@app/shared/payload';
import { BDF_PATTERN } from '@app/shared/pci/pci.constants';
import type { Machine } from '../machine/machine';
import { Caller } from '../caller.decorator';
import type { VmmCaller } from '../vmm-caller';
import { VmHardware } from './vm-hardware';
import { VmManager, type VmView } from './vm-manager';
import { CreateVmDto, GuestRamHandle, VcpuEnqcmdDto, VcpuEnqcmdsDto } from './vm.dto';

// CreateVmDto.devices in the OpenAPI document: each a BDF (the DTO's @Matches, which the Swagger plugin cannot copy).
ApiProperty({ items: { type: 'string', pattern: BDF_PATTERN.source } })(CreateVmDto.prototype, 'devices');

/** VM management (VMM admin token) and the virtual hardware a guest sees (its VM token only). */
@ApiTags('vms')
@ApiBearerAuth()
@Controller({ path: 'vms', version: '1' })
export class VmController {
  constructor(
    private readonly vms: VmManager,
    private readonly hw: VmHardware,
    @Inject(AUDIT_PEERS) private readonly peers: AuditPeers,
  ) {}

  /** Builds a VM on the host: process, RAM, KVM VM, GPA ioasid, devices on their RIDs, PASID translation. */
  @Post()
  @Auth('admin')
  create(@Caller() caller: VmmCaller, @Body() dto: CreateVmDto): Promise<{ id: number; token: string }> {
    return this.vms.create(caller, { name: dto.name, memoryMiB: dto.memoryMiB, vcpus: dto.vcpus, devices: dto.devices });
  }

  @Get()
  @Auth('admin')
  list(@Caller() caller: VmmCaller): VmView[] {
    return this.vms.list(caller);
  }

  @Get(':id')
  @Auth('caller-or-admin')
  get(@Caller() caller: VmmCaller, @Param('id', IntParamPipe) id: number): VmView {
    return this.vms.get(caller, id);
  }

  /** Tears the VM down in reverse (vIOMMU bindings, devices, GPA ioasid, KVM, process). */
  @Delete(':id')
  @Auth('admin')
  @HttpCode(204)
  remove(@Caller() caller: VmmCaller, @Param('id', IntParamPipe) id: number): Promise<void> {
    return this.vms.remove(caller, id);
  }

  /** Powers a stopped VM on again (e.g. after a host-kernel crash): its host side is built anew, as at a restore. */
  @Post(':id/start')
  @Auth('admin')
  @HttpCode(200)
  start(@Caller() caller: VmmCaller, @Param('id', IntParamPipe) id: number): Promise<VmView> {
    return this.vms.powerOn(caller, id);
  }

  /** What the guest may know: RAM size, vCPUs, devices by virtual RID. */
  @Get(':id/machine')
  @Auth('caller-or-admin')
  machine(@Caller() caller: VmmCaller, @Param('id', IntParamPipe) id: number): Machine {
    return this.hw.machine(caller, id);
  }

  /** The guest's lifeline to its VMM: when it drops, the guest is dead and its vIOMMU bindings are torn down. */
  @Get(':id/lifeline')
  lifeline(@Caller() caller: VmmCaller, @Param('id', IntParamPipe) id: number, @Req() req: Request, @Res() res: Response): void {
    const sink = sseSink(res);
    this.vms.attachGuest(caller, id, sink);
    openEventStream(req, res, { vm: id }, () => void this.vms.guestDropped(id, sink), this.peers);
  }

  /** The VM's RAM (its memory file's handle and size), for its guest to map: then it reads and writes RAM with no call. */
  @Get(':id/ram')
  ram(@Caller() caller: VmmCaller, @Param('id', IntParamPipe) id: number): GuestRamHandle {
    return this.hw.ram(caller, id);
  }

  /** Guest-physical write (DMA-visible RAM), through the VMM's own mapping of it. */
  @Put(':id/memory')
  @HttpCode(204)
  writeMemory(@Caller() caller: VmmCaller, @Param('id', IntParamPipe) id: number, @Body() dto: GuestWriteDto): Promise<void> {
    return this.hw.writeMemory(caller, id, dto.gpa, decodePayload(dto.data, dto.encoding));
  }

  @Get(':id/memory')
  async readMemory(@Caller() caller: VmmCaller, @Param('id', IntParamPipe) id: number, @Query() q: GuestReadQuery): Promise<{ data: string }> {
    return encodePayload(await this.hw.readMemory(caller, id, q.gpa, q.length), q.encoding);
  }

  /** WRMSR IA32_PASID on a vCPU (a vPASID: KVM translates it at ENQCMD). */
  @Post(':id/vcpus/:n/wrmsr')
  @HttpCode(204)
  wrmsr(@Caller() caller: VmmCaller, @Param('id', IntParamPipe) id: number, @Param('n', IntParamPipe) n: number, @Body() dto: WrmsrDto): Promise<void> {
    return this.hw.wrmsr(caller, id, n, dto.msr, dto.value);
  }

  /** ENQCMD on a vCPU to a device's portal: the guest gets ZF (accepted/retry) or #GP, never a host PASID. */
  @Post(':id/vcpus/:n/enqcmd')
  enqcmd(@Caller() caller: VmmCaller, @Param('id', IntParamPipe) id: number, @Param('n', IntParamPipe) n: number, @Body() dto: VcpuEnqcmdDto): Promise<EnqcmdResult> {
    return this.hw.enqcmd(caller, id, n, dto.vrid, dto.descriptor);
  }

  /** ENQCMDS on a vCPU (guest kernel mode): the vPASID comes from the descriptor; KVM translates it the same way. */
  @Post(':id/vcpus/:n/enqcmds')
  enqcmds(@Caller() caller: VmmCaller, @Param('id', IntParamPipe) id: number, @Param('n', IntParamPipe) n: number, @Body() dto: VcpuEnqcmdsDto): Promise<EnqcmdResult> {
    return this.hw.enqcmds(caller, id, n, { vrid: dto.vrid, descriptor: dto.descriptor, pasid: dto.pasid, privileged: dto.privileged });
  }
}
