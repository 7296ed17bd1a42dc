import { readFileSync } from 'node:fs';
import { BDF_PATTERN } from '@app/shared/pci/pci.constants';
import { adminTokenStream, commonConfig, ConfigError, type CommonConfig, envInt, envToken } from '@app/shared/config';
import { PRQ_DEFAULT_DEPTH, PRQ_DEFAULT_TIMEOUT_MS } from './iommu/iommu.constants';
import type { DeviceConfig } from './kernel';
import { type Limits, limitsFrom } from './limits/limits';

export interface HostKernelConfig extends CommonConfig {
  adminToken: string;
  adminTokenGenerated: boolean;
  memoryMiB: number;
  devices: DeviceConfig[];
  /** Host page request queue depth in requests, and how long a group may wait for its answer (DESIGN §10). */
  prqDepth: number;
  prqTimeoutMs: number;
  /** Per-process resource limits: PASID_LIMIT, PIN_LIMIT_MIB, MEM_LIMIT_MIB, FD_LIMIT, FILE_MAX, PROCESS_LIMIT. */
  limits: Limits;
}

/** DESIGN §6b: two PASID-capable DSA-like accelerators, 20-bit PASID, work-queue depth 32. */
export const DEFAULT_DEVICES: DeviceConfig[] = [
  { bdf: '0000:6a:01.0', vendorId: 0x8086, deviceId: 0x0b25, pasidWidth: 20, wqDepth: 32 },
  { bdf: '0000:6b:01.0', vendorId: 0x8086, deviceId: 0x0b25, pasidWidth: 20, wqDepth: 32 },
];

export function parseDevices(json: unknown, source: string): DeviceConfig[] {
  if (!Array.isArray(json) || json.length === 0) throw new ConfigError(`DEVICES ${source}: expected a non-empty JSON array`);
  const seen = new Set<string>();
  return json.map((d: unknown, i) => {
    const o = (d ?? {}) as Record<string, unknown>;
    const where = `DEVICES ${source}[${i}]`;
    if (typeof o.bdf !== 'string' || !BDF_PATTERN.test(o.bdf)) throw new ConfigError(`${where}.bdf must look like 0000:6a:01.0`);
    if (seen.has(o.bdf)) throw new ConfigError(`${where}.bdf ${o.bdf} is listed twice`);
    seen.add(o.bdf);
    const int = (k: string, min: number, max: number, dflt: number): number => {
      const v = o[k] ?? dflt;
      if (!Number.isInteger(v) || (v as number) < min || (v as number) > max) throw new ConfigError(`${where}.${k} must be an integer in [${min}, ${max}]`);
      return v as number;
    };
    return {
      bdf: o.bdf,
      vendorId: int('vendorId', 0, 0xffff, 0x8086),
      deviceId: int('deviceId', 0, 0xffff, 0x0b25),
      pasidWidth: int('pasidWidth', 0, 20, 20),
      wqDepth: int('wqDepth', 1, 4096, 32),
    };
  });
}

export function loadConfig(env: NodeJS.ProcessEnv): HostKernelConfig {
  const common = commonConfig(env, 'host-kernel', 7100, []);
  const admin = envToken(env, 'ADMIN_TOKEN', adminTokenStream(common.seed, 'host-kernel'));
  let devices = DEFAULT_DEVICES;
  if (env.DEVICES) {
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(env.DEVICES, 'utf8'));
    } catch (err) {
      throw new ConfigError(`DEVICES ${env.DEVICES}: ${(err as Error).message.split('\n')[0]}`);
    }
    devices = parseDevices(json, env.DEVICES);
  }
  return {
    ...common,
    adminToken: admin.token,
    adminTokenGenerated: admin.generated,
    memoryMiB: envInt(env, 'MEMORY_MIB', 4096, 1, 1 << 20),
    devices,
    prqDepth: envInt(env, 'PRQ_DEPTH', PRQ_DEFAULT_DEPTH, 1, 1 << 20),
    prqTimeoutMs: envInt(env, 'PRQ_TIMEOUT_MS', PRQ_DEFAULT_TIMEOUT_MS, 1, 2 ** 31 - 1),
    limits: limitsFrom((name, fallback, max) => envInt(env, name, fallback, 0, max)),
  };
}
