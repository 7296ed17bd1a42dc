import { Body, Controller, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import type { DeviceInfo } from '@app/shared/contract/host-kernel';
import { KernelError } from '@app/shared/errno';
import { BDF_PATTERN as BDF } from '@app/shared/pci/pci.constants';
import { Auth, CallerId } from '@app/shared/nest/auth';
import { IntParamPipe } from '@app/shared/nest/validation';
import { KernelService } from '../kernel.service';
import { AllowIoasidDto, DisallowIoasidDto } from './vfio.dto';

/** VFIO: the only layer that knows PCI devices; it authorizes ioasids on them. */
@ApiTags('vfio')
@ApiBearerAuth()
@Controller({ path: 'vfio', version: '1' })
export class VfioController {
  constructor(private readonly ks: KernelService) {}

  /** The assignable devices (from config). */
  @Get('devices')
  @Auth('caller-or-admin')
  devices(): DeviceInfo[] {
    return this.ks.kernel.listDevices();
  }

  /** Opens the device; exclusive (a second opener gets EBUSY). */
  @Post('devices/:bdf/open')
  open(@CallerId() pid: number, @Param('bdf') bdf: string): Promise<{ fd: number }> {
    return this.ks.exec({ operation: 'vfio.open', actor: `pid:${pid}`, object: `device:${bdf}`, args: { bdf } }, (k) => {
      if (!BDF.test(bdf)) throw new KernelError('EINVAL', `"${bdf}" is not a PCI address like 0000:6a:01.0`);
      return { fd: k.openDevice(pid, bdf) };
    });
  }

  /** DEVICE_ALLOW_IOASID: route the device's RID (or RID+PASID=ioasid) to the ioasid's page table; takes a reference. */
  @Post(':fd/allow-ioasid')
  @HttpCode(204)
  async allow(@CallerId() pid: number, @Param('fd', IntParamPipe) fd: number, @Body() dto: AllowIoasidDto): Promise<void> {
    await this.ks.exec({ operation: 'vfio.allow_ioasid', actor: `pid:${pid}`, object: `ioasid:${dto.ioasid}`, args: { deviceFd: fd, ...dto } }, (k) =>
      k.allowIoasid(pid, fd, dto),
    );
  }

  /** DEVICE_DISALLOW_IOASID: block the route, drain in-flight work, drop the reference. No route = a no-op. */
  @Post(':fd/disallow-ioasid')
  @HttpCode(204)
  async disallow(@CallerId() pid: number, @Param('fd', IntParamPipe) fd: number, @Body() dto: DisallowIoasidDto): Promise<void> {
    await this.ks.exec(
      { operation: 'vfio.disallow_ioasid', actor: `pid:${pid}`, object: `ioasid:${dto.ioasid}`, args: { deviceFd: fd, ...dto } },
      (k) => k.disallowIoasid(pid, fd, dto),
    );
  }
}
