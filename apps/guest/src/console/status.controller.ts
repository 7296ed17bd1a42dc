import { Controller, Get } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import type { GuestAppStatus } from '../guest.app';
import { GuestService } from '../guest.service';

@ApiTags('status')
@Controller({ version: '1' })
export class StatusController {
  constructor(private readonly guest: GuestService) {}

  /** Whether the guest has booted, the machine it booted on (virtual ids only), its processes and binds. */
  @Get('status')
  status(): GuestAppStatus {
    return this.guest.app.status();
  }
}
