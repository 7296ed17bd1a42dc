import { isPostgres } from '@app/shared/db';
import { EntitySchema, type MigrationInterface, type QueryRunner } from 'typeorm';

/** A VM as the VMM's database keeps it: its definition and token survive a VMM restart. */
export interface VmRow {
  /** The VMM instance (INSTANCE) whose VM this is: several may share one PostgreSQL database. */
  instance?: string;
  id: number;
  name: string;
  memoryMiB: number;
  vcpus: number;
  /** JSON array of host BDFs, in virtual slot order. */
  devices: string;
  token: string;
  /** running: host side built; stopped: its host side is gone (host process died, or rebuild failed). */
  state: 'running' | 'stopped';
  stopReason: string | null;
  hostPid: number | null;
  createdMs: number;
}

export const VmEntity = new EntitySchema<VmRow>({
  name: 'VmRow',
  tableName: 'vm',
  columns: {
    instance: { type: 'text', primary: true },
    id: { type: 'integer', primary: true },
    name: { type: 'text' },
    memoryMiB: { type: 'integer', name: 'memory_mib' },
    vcpus: { type: 'integer' },
    devices: { type: 'text' },
    token: { type: 'text' },
    state: { type: 'text' },
    stopReason: { type: 'text', name: 'stop_reason', nullable: true },
    hostPid: { type: 'integer', name: 'host_pid', nullable: true },
    createdMs: { type: 'integer', name: 'created_ms' },
  },
});

export class CreateVm1764000000002 implements MigrationInterface {
  name = 'CreateVm1764000000002';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE vm (
      id INTEGER PRIMARY KEY,
      name TEXT NOT NULL UNIQUE,
      memory_mib INTEGER NOT NULL,
      vcpus INTEGER NOT NULL,
      devices TEXT NOT NULL,
      token TEXT NOT NULL,
      state TEXT NOT NULL CHECK (state IN ('running', 'stopped')),
      stop_reason TEXT,
      host_pid INTEGER,
      created_ms ${isPostgres(q) ? 'BIGINT' : 'INTEGER'} NOT NULL
    )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE vm`);
  }
}

/**
 * VM rows belong to a VMM instance: ids and names are per VMM, so the key is (instance, id), names are unique per
 * instance, and two VMMs can share a database (DESIGN §12). Rows from before belong to the default instance, `vmm`.
 */
export class VmInstance1764000000012 implements MigrationInterface {
  name = 'VmInstance1764000000012';

  async up(q: QueryRunner): Promise<void> {
    if (isPostgres(q)) {
      await q.query(`ALTER TABLE vm ADD COLUMN instance TEXT NOT NULL DEFAULT 'vmm'`);
      await q.query(`ALTER TABLE vm DROP CONSTRAINT vm_pkey`);
      await q.query(`ALTER TABLE vm DROP CONSTRAINT vm_name_key`);
      await q.query(`ALTER TABLE vm ADD PRIMARY KEY (instance, id)`);
      await q.query(`ALTER TABLE vm ADD CONSTRAINT vm_instance_name UNIQUE (instance, name)`);
      return;
    }
    await q.query(`CREATE TABLE vm_new (
      instance TEXT NOT NULL DEFAULT 'vmm',
      id INTEGER NOT NULL,
      name TEXT NOT NULL,
      memory_mib INTEGER NOT NULL,
      vcpus INTEGER NOT NULL,
      devices TEXT NOT NULL,
      token TEXT NOT NULL,
      state TEXT NOT NULL CHECK (state IN ('running', 'stopped')),
      stop_reason TEXT,
      host_pid INTEGER,
      created_ms INTEGER NOT NULL,
      PRIMARY KEY (instance, id),
      UNIQUE (instance, name)
    )`);
    await q.query(`INSERT INTO vm_new (id, name, memory_mib, vcpus, devices, token, state, stop_reason, host_pid, created_ms)
      SELECT id, name, memory_mib, vcpus, devices, token, state, stop_reason, host_pid, created_ms FROM vm`);
    await q.query(`DROP TABLE vm`);
    await q.query(`ALTER TABLE vm_new RENAME TO vm`);
  }

  async down(): Promise<void> {
    throw new Error('VmInstance1764000000012 is not reversible');
  }
}

/** The VM table's migrations, in order (every place that opens a VMM database lists these). */
export const VM_MIGRATIONS = [CreateVm1764000000002, VmInstance1764000000012];
