import { type DynamicModule, type INestApplication, type LogLevel, type Type, VersioningType } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { DocumentBuilder, type OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import express from 'express';
import swaggerUi from 'swagger-ui-express';
import { StackPeerKey } from '../auth/stack-peer';
import type { LamportClock } from '../clock';
import type { CommonConfig } from '../config';
import { ProblemFilter } from './problem.filter';
import { CLOCK } from './tokens';
import { traceMiddleware } from './trace.middleware';
import { kernelValidationPipe, ObjectBodyPipe, verifyJsonBody } from './validation';

export interface BootstrapOptions {
  config: CommonConfig;
  module: Type | DynamicModule;
  title: string;
  description: string;
  /** Extra security schemes (bearer token is always declared). */
  onListening?: (app: INestApplication, port: number) => Promise<void> | void;
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
  const levels: LogLevel[] = process.env.LOG_LEVEL === 'debug' ? ['error', 'warn', 'log', 'debug'] : ['error', 'warn'];
  const app = await NestFactory.create(opts.module, { bodyParser: false, logger: levels, abortOnError: false });
  app.use(express.json({ limit: '8mb', strict: false, verify: verifyJsonBody }));
  app.use(traceMiddleware(app.get<LamportClock>(CLOCK), StackPeerKey.fromAuditToken(opts.config.auditToken)));
  app.enableVersioning({ type: VersioningType.URI });
  app.useGlobalPipes(new ObjectBodyPipe(), kernelValidationPipe());
  app.useGlobalFilters(new ProblemFilter());
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
    const force = setTimeout(() => {
      process.stderr.write(`${opts.config.app}: ${signal}: shutdown took too long\n`);
      process.exit(1);
    }, 10_000);
    force.unref();
    app
      .close()
      .then(() => process.exit(0))
      .catch((err: unknown) => {
        process.stderr.write(`${opts.config.app}: shutdown: ${String(err)}\n`);
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  await opts.onListening?.(app, address.port);
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
