import { Controller, Get, Header, Inject, Req, VERSION_NEUTRAL } from '@nestjs/common';
import type { Request } from 'express';
import type { CommonConfig } from '../config';
import type { AppMetrics } from '../metrics/metrics';
import { authorizeAudit } from './audit.controller';
import { Auth } from './auth';
import { APP_CONFIG, METRICS } from './tokens';

/** Prometheus scrape endpoint; like the audit plane, it needs the audit token when one is set. */
@Auth('none')
@Controller({ version: VERSION_NEUTRAL })
export class MetricsController {
  constructor(
    @Inject(APP_CONFIG) private readonly config: CommonConfig,
    @Inject(METRICS) private readonly metrics: AppMetrics,
  ) {}

  /** The app's metrics in the Prometheus text format (bearer: the audit token). */
  @Get('metrics')
  @Header('content-type', 'text/plain; version=0.0.4; charset=utf-8')
  scrape(@Req() req: Request): Promise<string> {
    authorizeAudit(this.config, req);
    return this.metrics.text();
  }
}
