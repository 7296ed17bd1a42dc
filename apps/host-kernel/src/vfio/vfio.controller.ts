import { Body, Controller, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import type { DeviceInfo } from '@app/shared/contract/host-kernel';
import { IntParamPipe } from '@app/shared/nest/validation';
import { Authorize, Caller } from '../dispatch/caller.decorator';
import { Dispatcher } from '../dispatch/dispatcher';
import type { HostCaller } from '../dispatch/op';
import { AllowIoasidDto, DisallowIoasidDto } from './vfio.dto';
import { vfioOps as ops } from './vfio.ops';

/** VFIO: the only layer that knows PCI devices; it authorizes ioasids on them. */
@ApiTags('vfio')
@ApiBearerAuth()
@Controller({ path: 'vfio', version: '1' })
export class VfioController {
  constructor(private readonly host: Dispatcher) {}

  /** The assignable devices (from config). */
  @Get('devices')
  @Authorize(ops.listDevices)
  devices(@Caller() caller: HostCaller): Promise<DeviceInfo[]> {
    return this.host.exec(ops.listDevices, caller, {});
  }

  /** Opens the device; exclusive (a second opener gets EBUSY). */
  @Post('devices/:bdf/open')
  @Authorize(ops.open)
  open(@Caller() caller: HostCaller, @Param('bdf') bdf: string): Promise<{ fd: number }> {
    return this.host.exec(ops.open, caller, { bdf });
  }

  /** DEVICE_ALLOW_IOASID: route the device's RID (or RID+PASID=ioasid) to the ioasid's page table; takes a reference. */
  @Post(':fd/allow-ioasid')
  @HttpCode(204)
  @Authorize(ops.allowIoasid)
  async allow(@Caller() caller: HostCaller, @Param('fd', IntParamPipe) fd: number, @Body() dto: AllowIoasidDto): Promise<void> {
    await this.host.exec(ops.allowIoasid, caller, { deviceFd: fd, ...dto });
  }

  /** DEVICE_DISALLOW_IOASID: block the route, drain in-flight work, drop the reference. No route = a no-op. */
  @Post(':fd/disallow-ioasid')
  @HttpCode(204)
  @Authorize(ops.disallowIoasid)
  async disallow(@Caller() caller: HostCaller, @Param('fd', IntParamPipe) fd: number, @Body() dto: DisallowIoasidDto): Promise<void> {
    await this.host.exec(ops.disallowIoasid, caller, { deviceFd: fd, ...dto });
  }
}
