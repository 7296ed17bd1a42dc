import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { type DynamicModule, Global, Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource, type EntitySchema } from 'typeorm';
import { AuditPeers } from '../audit/peers';
import { StateView } from '../audit/state-view';
import { StackPeerKey } from '../auth/stack-peer';
import { LamportClock } from '../clock';
import type { CommonConfig } from '../config';
import { dataSourceOptions, openDataSource, WriteLock } from '../db';
import { Journal } from '../journal/journal';
import { type Logger, logJournalRows, loggerFor } from '../log/logger';
import { AppMetrics, journalMetrics } from '../metrics/metrics';
import { SeededStream } from '../replay/seeded';
import { useSeededIds } from '../trace';
import { AuditController } from './audit.controller';
import { HealthController } from './health.controller';
import { MetricsController } from './metrics.controller';
import { OperatorController } from './operator.controller';
import { UiController } from './ui.controller';
import { APP_CONFIG, AUDIT_PEERS, CLOCK, JOURNAL, LOGGER, METRICS, STATE_VIEW } from './tokens';

export interface CoreOptions {
  config: CommonConfig;
  entities?: EntitySchema[];
  // eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
  migrations?: Function[];
}

/**
 * What every app has: its database (migrated at start), the journal with its write lock and Lamport clock,
 * its logger and metrics, `/health`, `/metrics`, the audit endpoints and the /ui page.
 */
@Global()
@Module({})
export class CoreModule {
  static forRoot(opts: CoreOptions): DynamicModule {
    if (!opts.config.dbUrl && opts.config.dbPath !== ':memory:') mkdirSync(dirname(opts.config.dbPath), { recursive: true });
    const options = dataSourceOptions({ path: opts.config.dbPath, url: opts.config.dbUrl, entities: opts.entities, migrations: opts.migrations });
    return {
      module: CoreModule,
      imports: [
        TypeOrmModule.forRootAsync({
          useFactory: () => ({ ...options, retryAttempts: 0 }),
          dataSourceFactory: async (o) => openDataSource(o ?? options),
        }),
      ],
      controllers: [HealthController, AuditController, OperatorController, MetricsController, UiController],
      providers: [
        { provide: APP_CONFIG, useValue: opts.config },
        { provide: LOGGER, useValue: loggerFor(opts.config) },
        { provide: METRICS, useValue: new AppMetrics(opts.config.app, { processMetrics: true }) },
        { provide: STATE_VIEW, useValue: new StateView() },
        { provide: CLOCK, useValue: new LamportClock(0, opts.config.lamportMaxStep) },
        { provide: AUDIT_PEERS, useValue: new AuditPeers(opts.config.auditPeers, StackPeerKey.fromAuditToken(opts.config.auditToken)) },
        {
          provide: JOURNAL,
          inject: [DataSource, CLOCK, LOGGER, METRICS],
          useFactory: async (ds: DataSource, clock: LamportClock, log: Logger, metrics: AppMetrics) => {
            const journal = new Journal(ds, opts.config.app, clock, new WriteLock(), opts.config.instance);
            journalMetrics(metrics, journal.store);
            logJournalRows(log, journal.store);
            await journal.recover();
            clock.restore(opts.config.lamportFloor);
            // Deterministic mode: this boot's trace and span ids come from its own stream of the seed.
            if (opts.config.seed !== null) useSeededIds(new SeededStream(opts.config.seed, `${opts.config.app}/ids/boot-${journal.bootSeq}`));
            return journal;
          },
        },
      ],
      exports: [APP_CONFIG, CLOCK, JOURNAL, AUDIT_PEERS, LOGGER, METRICS, STATE_VIEW],
    };
  }
}
