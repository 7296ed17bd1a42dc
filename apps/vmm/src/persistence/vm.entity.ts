import { EntitySchema, type MigrationInterface, type QueryRunner } from 'typeorm';

/** A VM as the VMM's database keeps it: its definition and token survive a VMM restart. */
export interface VmRow {
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
      created_ms INTEGER NOT NULL
    )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE vm`);
  }
}
