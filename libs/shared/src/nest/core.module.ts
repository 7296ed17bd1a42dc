import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { type DynamicModule, Global, Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource, type EntitySchema } from 'typeorm';
import { AuditPeers } from '../audit/peers';
import { StackPeerKey } from '../auth/stack-peer';
import { LamportClock } from '../clock';
import type { CommonConfig } from '../config';
import { createDataSource, WriteLock } from '../db';
import { Journal } from '../journal/journal';
import { AuditController } from './audit.controller';
import { HealthController } from './health.controller';
import { APP_CONFIG, AUDIT_PEERS, CLOCK, JOURNAL } from './tokens';

export interface CoreOptions {
  config: CommonConfig;
  entities?: EntitySchema[];
  // eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
  migrations?: Function[];
}

/**
 * What every app has: its SQLite database (migrated at start), the journal with its write lock and
 * Lamport clock, `/health`, and the audit endpoints.
 */
@Global()
@Module({})
export class CoreModule {
  static forRoot(opts: CoreOptions): DynamicModule {
    if (opts.config.dbPath !== ':memory:') mkdirSync(dirname(opts.config.dbPath), { recursive: true });
    const dataSourceOptions = createDataSource({
      path: opts.config.dbPath,
      entities: opts.entities,
      migrations: opts.migrations,
    }).options;
    return {
      module: CoreModule,
      imports: [TypeOrmModule.forRoot({ ...dataSourceOptions, retryAttempts: 0 })],
      controllers: [HealthController, AuditController],
      providers: [
        { provide: APP_CONFIG, useValue: opts.config },
        { provide: CLOCK, useValue: new LamportClock(0, opts.config.lamportMaxStep) },
        { provide: AUDIT_PEERS, useValue: new AuditPeers(opts.config.auditPeers, StackPeerKey.fromAuditToken(opts.config.auditToken)) },
        {
          provide: JOURNAL,
          inject: [DataSource, CLOCK],
          useFactory: async (ds: DataSource, clock: LamportClock) => {
            const journal = new Journal(ds, opts.config.app, clock, new WriteLock());
            await journal.recover();
            return journal;
          },
        },
      ],
      exports: [APP_CONFIG, CLOCK, JOURNAL, AUDIT_PEERS],
    };
  }
}
