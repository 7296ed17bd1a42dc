import { Body, Controller, Delete, Get, HttpCode, Inject, Param, Post, Put, Query, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import type { EnqcmdResult } from '@app/shared/contract/host-kernel';
import { KernelError } from '@app/shared/errno';
import type { Journal } from '@app/shared/journal/journal';
import { Auth } from '@app/shared/nest/auth';
import type { AuditPeers } from '@app/shared/audit/peers';
import { AUDIT_PEERS, JOURNAL } from '@app/shared/nest/tokens';
import { openEventStream } from '@app/shared/nest/event-stream';
import { IntParamPipe } from '@app/shared/nest/validation';
import { decodePayload, encodePayload } from '@app/shared/payload';
import type { Machine } from '../machine/machine';
import { GuestReadQuery, GuestWriteDto, WrmsrDto } from '@app/shared/nest/shared.dto';
import { onBehalfOfGuest } from './guest-errors';
import type { Vm } from './vm-builder';
import { CreateVmDto, VcpuEnqcmdDto, VcpuEnqcmdsDto } from './vm.dto';
import { VmService, type VmView } from './vm.service';

/** VM management (VMM admin token) and the virtual hardware a guest sees (its VM token only). */
@ApiTags('vms')
@ApiBearerAuth()
@Controller({ path: 'vms', version: '1' })
export class VmController {
  constructor(
    private readonly vms: VmService,
    @Inject(JOURNAL) private readonly journal: Journal,
    @Inject(AUDIT_PEERS) private readonly peers: AuditPeers,
  ) {}

  /** Builds a VM on the host: process, RAM, KVM VM, GPA ioasid, devices on their RIDs, PASID translation. */
  @Post()
  @Auth('admin')
  create(@Body() dto: CreateVmDto): Promise<{ id: number; token: string }> {
    return this.vms.create(dto);
  }

  @Get()
  @Auth('admin')
  list(): VmView[] {
    return this.vms.list();
  }

  @Get(':id')
  @Auth('caller-or-admin')
  get(@Param('id', IntParamPipe) id: number): VmView {
    return this.vms.get(id);
  }

  /** Tears the VM down in reverse (vIOMMU bindings, devices, GPA ioasid, KVM, process). */
  @Delete(':id')
  @Auth('admin')
  @HttpCode(204)
  remove(@Param('id', IntParamPipe) id: number): Promise<void> {
    return this.vms.remove(id);
  }

  /** What the guest may know: RAM size, vCPUs, devices by virtual RID. */
  @Get(':id/machine')
  @Auth('caller-or-admin')
  machine(@Param('id', IntParamPipe) id: number): Machine {
    return this.vms.machine(id);
  }

  /** The guest's lifeline to its VMM: when it drops, the guest is dead and its vIOMMU bindings are torn down. */
  @Get(':id/lifeline')
  lifeline(@Param('id', IntParamPipe) id: number, @Req() req: Request, @Res() res: Response): void {
    this.vms.attachGuest(id, res);
    openEventStream(req, res, { vm: id }, () => void this.vms.guestDropped(id, res), this.peers);
  }

  /** Guest-physical write (DMA-visible RAM). */
  @Put(':id/memory')
  @HttpCode(204)
  async writeMemory(@Param('id', IntParamPipe) id: number, @Body() dto: GuestWriteDto): Promise<void> {
    const vm = this.vms.running(id);
    const data = decodePayload(dto.data, dto.encoding);
    await this.journal.run({ operation: 'guest.write_memory', actor: `vm:${id}`, args: { gpa: dto.gpa, length: data.length } }, () => {
      this.checkRam(vm.ramBytes, dto.gpa, data.length);
      return onBehalfOfGuest('guest memory write', () => vm.port.writeGuestMemory(vm.handles.vmFd, dto.gpa, data));
    });
  }

  @Get(':id/memory')
  async readMemory(@Param('id', IntParamPipe) id: number, @Query() q: GuestReadQuery): Promise<{ data: string }> {
    const vm = this.vms.running(id);
    this.checkRam(vm.ramBytes, q.gpa, q.length);
    return encodePayload(await onBehalfOfGuest('guest memory read', () => vm.port.readGuestMemory(vm.handles.vmFd, q.gpa, q.length)), q.encoding);
  }

  /** WRMSR IA32_PASID on a vCPU (a vPASID: KVM translates it at ENQCMD). */
  @Post(':id/vcpus/:n/wrmsr')
  @HttpCode(204)
  async wrmsr(@Param('id', IntParamPipe) id: number, @Param('n', IntParamPipe) n: number, @Body() dto: WrmsrDto): Promise<void> {
    const vm = this.vms.running(id);
    await this.journal.run({ operation: 'vcpu.wrmsr', actor: `vm:${id}`, object: `vcpu:${id}/${n}`, args: dto }, () => {
      const vcpu = this.vcpu(vm.handles.vcpus, n);
      return onBehalfOfGuest('WRMSR', () => vm.port.vcpuWrmsr(vm.handles.vmFd, vcpu, dto.value));
    });
  }

  /** ENQCMD on a vCPU to a device's portal: the guest gets ZF (accepted/retry) or #GP, never a host PASID. */
  @Post(':id/vcpus/:n/enqcmd')
  enqcmd(@Param('id', IntParamPipe) id: number, @Param('n', IntParamPipe) n: number, @Body() dto: VcpuEnqcmdDto): Promise<EnqcmdResult> {
    return this.submit('vcpu.enqcmd', id, n, dto, (vm, vcpu, deviceFd) => vm.port.vcpuEnqcmd(vm.handles.vmFd, vcpu, deviceFd, dto.descriptor));
  }

  /** ENQCMDS on a vCPU (guest kernel mode): the vPASID comes from the descriptor; KVM translates it the same way. */
  @Post(':id/vcpus/:n/enqcmds')
  enqcmds(@Param('id', IntParamPipe) id: number, @Param('n', IntParamPipe) n: number, @Body() dto: VcpuEnqcmdsDto): Promise<EnqcmdResult> {
    return this.submit('vcpu.enqcmds', id, n, dto, (vm, vcpu, deviceFd) =>
      vm.port.vcpuEnqcmds(vm.handles.vmFd, vcpu, deviceFd, dto.descriptor, dto.pasid, dto.privileged),
    );
  }

  private submit(
    operation: string,
    id: number,
    n: number,
    dto: VcpuEnqcmdDto,
    run: (vm: Vm, vcpu: number, deviceFd: number) => Promise<EnqcmdResult>,
  ): Promise<EnqcmdResult> {
    const vm = this.vms.running(id);
    return this.journal.run({ operation, actor: `vm:${id}`, object: `vcpu:${id}/${n}`, args: dto }, async () => {
      const device = vm.handles.devices.find((d) => d.vrid === dto.vrid);
      if (!device || device.deviceFd === undefined) throw new KernelError('ENODEV', `no device at vrid 0x${dto.vrid.toString(16)}`);
      const vcpu = this.vcpu(vm.handles.vcpus, n);
      return onBehalfOfGuest(operation, () => run(vm, vcpu, device.deviceFd as number));
    });
  }

  private vcpu(vcpus: number[], n: number): number {
    if (n >= vcpus.length) throw new KernelError('EINVAL', `no vcpu ${n}: the VM has ${vcpus.length}`);
    return vcpus[n];
  }

  /** Guest RAM is [0, memoryMiB MiB): anything else is not this guest's to touch. */
  private checkRam(ramBytes: number, gpa: number, length: number): void {
    if (gpa + length > ramBytes) throw new KernelError('EFAULT', `gpa range [0x${gpa.toString(16)}, +${length}) is outside guest RAM`);
  }
}
