// The host kernel alone in this process, from the real code (DESIGN §8): the HostKernelApp the REST app wraps,
// over an in-memory journal. InProcessStack composes it with the rest; the VMM's unit tests reach it through
// InProcessHostKernel, so nothing imitates the host's behaviour.
import { randomBytes } from 'node:crypto';
import { LamportClock } from '@app/shared/clock';
import { adminTokenStream } from '@app/shared/config';
import { createDataSource } from '@app/shared/db';
import { Journal } from '@app/shared/journal/journal';
import { type Timers, timersFor } from '@app/shared/timers';
import type { DataSource, EntitySchema, MixedList } from 'typeorm';
import type { EngineOptions } from '../apps/host-kernel/src/devices/device-set';
import type { FaultInjector } from '../apps/host-kernel/src/fault-injection';
import { HostKernelApp } from '../apps/host-kernel/src/host-kernel.app';
import type { DeviceConfig } from '../apps/host-kernel/src/kernel';
import { DEFAULT_LIMITS, type Limits } from '../apps/host-kernel/src/limits/limits';
import { PROCESS_MIGRATIONS, ProcessEntity } from '../apps/host-kernel/src/persistence/process.entity';

/** DESIGN §6b: two PASID-capable DSA-like accelerators, 20-bit PASID, work-queue depth 32. */
export const STACK_DEVICES: DeviceConfig[] = [
  { bdf: '0000:6a:01.0', vendorId: 0x8086, deviceId: 0x0b25, pasidWidth: 20, wqDepth: 32 },
  { bdf: '0000:6b:01.0', vendorId: 0x8086, deviceId: 0x0b25, pasidWidth: 20, wqDepth: 32 },
];

// eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
type Migrations = MixedList<Function>;

/** An app's journal on its own in-memory SQLite database (`DB_PATH=:memory:`), recovered as at start-up. */
export async function openJournal(app: string, entities: EntitySchema[] = [], migrations: Migrations = []): Promise<{ ds: DataSource; journal: Journal }> {
  const ds = createDataSource({ path: ':memory:', entities, migrations });
  await ds.initialize();
  const journal = new Journal(ds, app, new LamportClock());
  await journal.recover();
  return { ds, journal };
}

export interface InProcessHostOptions {
  devices?: DeviceConfig[];
  memoryMiB?: number;
  engine?: EngineOptions;
  faults?: FaultInjector;
  /** Deterministic mode (DESIGN §9): tokens from the seed, waits on logical time. */
  seed?: number;
  /** The host's waits (page request timeouts, device back-off); by default real timers, or logical ones with a seed. */
  timers?: Timers;
  /** Host page request queue depth and PRQ_TIMEOUT_MS. */
  prqDepth?: number;
  prqTimeoutMs?: number;
  /** Resource limits (defaults: DEFAULT_LIMITS, as the REST app without PASID_LIMIT & co.). */
  limits?: Partial<Limits>;
}

export interface InProcessHost {
  host: HostKernelApp;
  adminToken: string;
  ds: DataSource;
  /** A clean shutdown (every process exits, journaled), then the database closes. */
  close(): Promise<void>;
}

/** Boots a host kernel on a fresh in-memory journal, with a random admin token (seeded in deterministic mode). */
export async function openInProcessHost(opts: InProcessHostOptions = {}): Promise<InProcessHost> {
  const { ds, journal } = await openJournal('host-kernel', [ProcessEntity], PROCESS_MIGRATIONS);
  const seed = opts.seed ?? null;
  const adminToken = adminTokenStream(seed, 'host-kernel')?.hex(16) ?? randomBytes(16).toString('hex');
  const host = await HostKernelApp.open({
    memoryMiB: opts.memoryMiB ?? 256,
    devices: opts.devices ?? STACK_DEVICES,
    adminToken,
    journal,
    engine: opts.engine,
    faults: opts.faults,
    seed,
    timers: opts.timers ?? timersFor(seed, journal.clock),
    prqDepth: opts.prqDepth,
    prqTimeoutMs: opts.prqTimeoutMs,
    limits: { ...DEFAULT_LIMITS, ...opts.limits },
  });
  return {
    host,
    adminToken,
    ds,
    close: async () => {
      await host.shutdown();
      if (ds.isInitialized) await ds.destroy();
    },
  };
}
