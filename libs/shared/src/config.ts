import { randomBytes } from 'node:crypto';
import { isAbsolute, join, resolve } from 'node:path';
import { AUDIT_PEER_TIMEOUT_MS } from './audit/federation';
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

export function envToken(env: Env, name: string): { token: string; generated: boolean } {
  const raw = env[name];
  if (raw === undefined || raw === '') return { token: randomBytes(16).toString('hex'), generated: true };
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

export interface CommonConfig {
  app: string;
  host: string;
  port: number;
  dbPath: string;
  /** Apps whose journals `/v1/audit/*` federates (downstream peers by default). */
  auditPeers: string[];
  /** When set, `/v1/audit/*` needs it as bearer token, and federation sends it to the peers. */
  auditToken: string | null;
  /** How long federation waits for one peer (AUDIT_PEER_TIMEOUT_MS). */
  auditPeerTimeoutMs: number;
  /** This app's own URL, known once it listens (port 0 picks one); sent to peers as `x-audit-url`. */
  publicUrl: string | null;
  /** How far one message may advance the Lamport clock (LAMPORT_MAX_STEP). */
  lamportMaxStep: number;
}

export function commonConfig(env: Env, app: string, defaultPort: number, defaultPeers: string[]): CommonConfig {
  return {
    app,
    host: env.HOST || '127.0.0.1',
    port: envPort(env, 'PORT', defaultPort),
    dbPath: envDbPath(env, app),
    auditPeers: envUrlList(env, 'AUDIT_PEERS', defaultPeers),
    auditToken: env.AUDIT_TOKEN ? envToken(env, 'AUDIT_TOKEN').token : null,
    auditPeerTimeoutMs: envInt(env, 'AUDIT_PEER_TIMEOUT_MS', AUDIT_PEER_TIMEOUT_MS, 1, 60_000),
    publicUrl: null,
    lamportMaxStep: envInt(env, 'LAMPORT_MAX_STEP', LAMPORT_MAX_STEP, 1, 2 ** 52),
  };
}
