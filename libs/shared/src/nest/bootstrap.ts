import { type DynamicModule, type INestApplication, type Type, VersioningType } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { DocumentBuilder, type OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import express from 'express';
import swaggerUi from 'swagger-ui-express';
import { StackPeerKey } from '../auth/stack-peer';
import type { LamportClock } from '../clock';
import type { CommonConfig } from '../config';
import { loggerFor } from '../log/logger';
import type { AppMetrics } from '../metrics/metrics';
import { ExpressSameShapeAdapter } from './express-adapter';
import { httpObserve } from './http-observe';
import { NestPinoLogger } from './nest-logger';
import { ProblemFilter } from './problem.filter';
import { CLOCK, METRICS } from './tokens';
import { type InputSource, traceMiddleware } from './trace.middleware';
import { kernelValidationPipe, ObjectBodyPipe, verifyJsonBody } from './validation';

export interface BootstrapOptions {
  config: CommonConfig;
  module: Type | DynamicModule;
  title: string;
  description: string;
  /** How request log lines name a caller known by its token: `pid` (host kernel), `vm` (VMM). */
  principal?: string;
  onListening?: (app: INestApplication, port: number) => Promise<void> | void;
  /** How the app names the requests that enter the stack through it (DESIGN §9: inputs, marked in the journal). */
  inputs?: (app: INestApplication) => Omit<InputSource, 'app'>;
}

/** The OpenAPI document of an app (also what `npm run openapi` commits under openapi/). */
export function buildOpenApi(app: INestApplication, opts: BootstrapOptions): OpenAPIObject {
  const config = new DocumentBuilder()
    .setTitle(opts.title)
    .setDescription(opts.description)
    .setVersion('1')
    .addBearerAuth()
    .build();
  return SwaggerModule.createDocument(app, config);
}

/**
 * Starts an app the same way for all three: JSON bodies (bounded), trace propagation, URI versioning,
 * global validation, the problem filter, Swagger at /docs (+ /docs-json), graceful SIGTERM, and the
 * `READY {"app","port"}` line once listening.
 */
export async function bootstrap(opts: BootstrapOptions): Promise<INestApplication> {
  const log = loggerFor(opts.config);
  const app = await NestFactory.create(opts.module, new ExpressSameShapeAdapter(), { bodyParser: false, logger: new NestPinoLogger(log.child({ component: 'nest' })), abortOnError: false });
  app.use(express.json({ limit: '8mb', strict: false, verify: verifyJsonBody }));
  let source: InputSource | undefined;
  const inputs = opts.inputs;
  app.use(traceMiddleware(app.get<LamportClock>(CLOCK), StackPeerKey.fromAuditToken(opts.config.auditToken), inputs && (() => (source ??= { app: opts.config.app, ...inputs(app) }))));
  app.use(httpObserve(log, app.get<AppMetrics>(METRICS), opts.principal ?? 'caller'));
  app.enableVersioning({ type: VersioningType.URI });
  app.useGlobalPipes(new ObjectBodyPipe(), kernelValidationPipe());
  app.useGlobalFilters(new ProblemFilter(log.child({ component: 'problem-filter' })));
  const document = buildOpenApi(app, opts);
  const server = app.getHttpAdapter();
  server.get('/docs-json', (_req: express.Request, res: express.Response) => res.json(document));
  app.use('/docs', swaggerUi.serve, swaggerUi.setup(document, { customSiteTitle: opts.title }));
  await app.listen(opts.config.port, opts.config.host);
  const address = app.getHttpServer().address() as { port: number };
  opts.config.publicUrl = `http://${opts.config.host.includes(':') ? `[${opts.config.host}]` : opts.config.host}:${address.port}`;
  // Graceful shutdown: end lifelines, close the server and the database, then exit 0.
  let closing = false;
  const shutdown = (signal: string): void => {
    if (closing) return;
    closing = true;
    log.info({ signal }, 'shutting down');
    const force = setTimeout(() => {
      log.error({ signal }, 'shutdown took too long');
      process.exit(1);
    }, 10_000);
    force.unref();
    app
      .close()
      .then(() => process.exit(0))
      .catch((err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  await opts.onListening?.(app, address.port);
  log.info({ url: opts.config.publicUrl, docs: `${opts.config.publicUrl}/docs`, ui: `${opts.config.publicUrl}/ui` }, 'listening');
  process.stdout.write(`READY ${JSON.stringify({ app: opts.config.app, port: address.port })}\n`);
  return app;
}

/** Runs an app's main: a config or start-up failure is one clear line on stderr and exit code 1. */
export function runMain(app: string, main: () => Promise<unknown>): void {
  main().catch((err: unknown) => {
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`${app}: ${message.split('\n')[0]}\n`);
    process.exit(1);
  });
}
