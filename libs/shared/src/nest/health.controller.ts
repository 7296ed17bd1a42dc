import { Controller, Get, Inject, VERSION_NEUTRAL } from '@nestjs/common';
import { DataSource } from 'typeorm';
import type { CommonConfig } from '../config';
import { Auth } from './auth';
import { APP_CONFIG } from './tokens';

@Auth('none')
@Controller({ version: VERSION_NEUTRAL })
export class HealthController {
  constructor(
    @Inject(APP_CONFIG) private readonly config: CommonConfig,
    private readonly ds: DataSource,
  ) {}

  /** Readiness: the server answers and its database does too. */
  @Get('health')
  async health(): Promise<{ status: 'ok'; app: string }> {
    await this.ds.query('SELECT 1');
    return { status: 'ok', app: this.config.app };
  }
}
