import { randomBytes } from 'node:crypto';
import { isAbsolute, join, resolve } from 'node:path';
import { LOG_LEVELS, type LogLevel, type LogOptions } from './log/log-options';
import { SeededStream } from './replay/seeded';
import { AUDIT_PEER_TIMEOUT_MS } from './audit/federation';
import { parseStallPoints } from './debug/stall-knob';
import { LAMPORT_MAX_STEP } from './clock';

/** A bad configuration value: the app prints this one line and exits (no stack trace). */
export class ConfigError extends Error {}

type Env = Record<string, string | undefined>;

export function envPort(env: Env, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || n > 65535) throw new ConfigError(`${name} must be an integer in [0, 65535], got "${raw}"`);
  return n;
}

export function envInt(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!/^-?\d+$/.test(raw.trim()) || n < min || n > max)
    throw new ConfigError(`${name} must be an integer in [${min}, ${max}], got "${raw}"`);
  return n;
}

export function envUrl(env: Env, name: string, fallback?: string): string {
  const raw = env[name] || fallback;
  if (!raw) throw new ConfigError(`${name} is required (a http:// URL)`);
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new ConfigError(`${name} must be a http:// URL, got "${raw}"`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ConfigError(`${name} must be a http:// URL, got "${raw}"`);
  return u.toString().replace(/\/$/, '');
}

/** A token from the environment, or a generated one: random, or drawn from `seeded` in deterministic mode. */
export function envToken(env: Env, name: string, seeded: SeededStream | null = null): { token: string; generated: boolean } {
  const raw = env[name];
  if (raw === undefined || raw === '') return { token: seeded ? seeded.hex(16) : randomBytes(16).toString('hex'), generated: true };
  if (!/^[A-Za-z0-9._~-]{8,128}$/.test(raw)) throw new ConfigError(`${name} must be 8-128 URL-safe characters`);
  return { token: raw, generated: false };
}

export function envUrlList(env: Env, name: string, fallback: string[]): string[] {
  const raw = env[name];
  if (raw === undefined) return fallback;
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s, i) => envUrl({ [`${name}[${i}]`]: s }, `${name}[${i}]`));
}

/** The database path: DB_PATH wins (":memory:" allowed), else DATA_DIR/<app>.db. */
export function envDbPath(env: Env, app: string): string {
  if (env.DB_PATH) return env.DB_PATH === ':memory:' ? ':memory:' : resolve(env.DB_PATH);
  const dir = env.DATA_DIR || './data';
  return join(isAbsolute(dir) ? dir : resolve(dir), `${app}.db`);
}

/** LOG_LEVEL (default info) and LOG_FORMAT (json | pretty; default pretty when stderr is a terminal). */
export function envLogOptions(env: Env, app: string): LogOptions {
  const raw = (env.LOG_LEVEL || 'info').toLowerCase();
  // Nest's names, which LOG_LEVEL took before pino: log = info, verbose = trace.
  const level = raw === 'log' ? 'info' : raw === 'verbose' ? 'trace' : raw;
  if (!(LOG_LEVELS as readonly string[]).includes(level)) throw new ConfigError(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got "${env.LOG_LEVEL}"`);
  const format = env.LOG_FORMAT || (process.stderr.isTTY ? 'pretty' : 'json');
  if (format !== 'json' && format !== 'pretty') throw new ConfigError(`LOG_FORMAT must be json or pretty, got "${format}"`);
  return { app, level: level as LogLevel, pretty: format === 'pretty' };
}

/** DB_URL: a PostgreSQL URL (postgres:// or postgresql://), or null for the SQLite file. */
export function envDbUrl(env: Env): string | null {
  const raw = env.DB_URL;
  if (raw === undefined || raw === '') return null;
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new ConfigError('DB_URL must be a postgres:// URL');
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') throw new ConfigError(`DB_URL must be a postgres:// URL, got a ${u.protocol} URL`);
  return raw;
}

/** INSTANCE: what this app's rows are signed with in a shared database (default: the app's name). */
export function envInstance(env: Env, app: string): string {
  const raw = env.INSTANCE;
  if (raw === undefined || raw === '') return app;
  if (!/^[A-Za-z0-9._:@-]{1,64}$/.test(raw)) throw new ConfigError('INSTANCE must be 1-64 characters of A-Z a-z 0-9 . _ : @ -');
  return raw;
}

export interface CommonConfig {
  app: string;
  host: string;
  port: number;
  dbPath: string;
  /** DB_URL: PostgreSQL instead of the SQLite file (DESIGN §12). */
  dbUrl: string | null;
  /** INSTANCE: names this app's rows in a database several instances share. */
  instance: string;
  /** Apps whose journals `/v1/audit/*` federates (downstream peers by default). */
  auditPeers: string[];
  /** When set, `/v1/audit/*` needs it as bearer token, and federation sends it to the peers. */
  auditToken: string | null;
  /** How long federation waits for one peer (AUDIT_PEER_TIMEOUT_MS). */
  auditPeerTimeoutMs: number;
  /** This app's own URL, known once it listens (port 0 picks one); sent to peers as `x-audit-url`. */
  publicUrl: string | null;
  /** LOG_LEVEL, LOG_FORMAT (log/logger.ts). */
  log: LogOptions;
  /** SEED: deterministic mode (DESIGN §9): tokens, ids and waits derive from it. Null: random, wall-clock. */
  seed: number | null;
  /** LAMPORT: the logical time to start from at least (the harness hands a restarted app the run's clock). */
  lamportFloor: number;
  /** How far one message may advance the Lamport clock (LAMPORT_MAX_STEP). */
  lamportMaxStep: number;
}

/** DEBUG_STALL_BEFORE, checked at start (a typo must not silently stall nothing): see debug/stall-knob.ts. */
export function debugStall(env: Env): string | null {
  const raw = env.DEBUG_STALL_BEFORE || null;
  try {
    parseStallPoints(raw);
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  return raw;
}

/** SEED=<n>, a non-negative integer, or null when unset. */
export function envSeed(env: Env): number | null {
  const raw = env.SEED;
  if (raw === undefined || raw === '') return null;
  return envInt(env, 'SEED', 0, 0, Number.MAX_SAFE_INTEGER);
}

/** The seeded stream of this app's generated admin token (null without SEED). */
export function adminTokenStream(seed: number | null, app: string): SeededStream | null {
  return seed === null ? null : new SeededStream(seed, `${app}/admin-token`);
}

export function commonConfig(env: Env, app: string, defaultPort: number, defaultPeers: string[]): CommonConfig {
  return {
    app,
    host: env.HOST || '127.0.0.1',
    port: envPort(env, 'PORT', defaultPort),
    dbPath: envDbPath(env, app),
    dbUrl: envDbUrl(env),
    instance: envInstance(env, app),
    auditPeers: envUrlList(env, 'AUDIT_PEERS', defaultPeers),
    auditToken: env.AUDIT_TOKEN ? envToken(env, 'AUDIT_TOKEN').token : null,
    auditPeerTimeoutMs: envInt(env, 'AUDIT_PEER_TIMEOUT_MS', AUDIT_PEER_TIMEOUT_MS, 1, 60_000),
    publicUrl: null,
    log: envLogOptions(env, app),
    seed: envSeed(env),
    lamportFloor: envInt(env, 'LAMPORT', 0, 0, Number.MAX_SAFE_INTEGER),
    lamportMaxStep: envInt(env, 'LAMPORT_MAX_STEP', LAMPORT_MAX_STEP, 1, 2 ** 52),
  };
}
