// The stack on PostgreSQL (DESIGN §12): a throwaway server, the three apps and a second host kernel on one
// database with DB_URL. The guest demo and a host-kernel reboot run as on SQLite; the rows are checked in
// PostgreSQL itself, the append-only trigger refuses UPDATE, DELETE and TRUNCATE, calls on the asynchronous
// journal are serialized, and each row names its instance so audit can ask one host kernel or the fleet.
import type { JournalEvent } from '../libs/shared/src/journal/journal';
import { spawnApp, type AppProcess } from './harness/apps';
import { restDriver, restJournal, runDemo } from './harness/demo-flow';
import { pool } from './harness/guest';
import { useStack } from './harness/hooks';
import { TestPostgres } from './harness/postgres';
import { AUDIT, eventually, HOST_ADMIN, http } from './harness/stack';

const DB = 'lab';

describe('the stack on PostgreSQL', () => {
  let pg: TestPostgres;
  let hostB: AppProcess | undefined;
  const stack = useStack(async (s) => {
    pg = await TestPostgres.start();
    await pg.createDatabase(DB);
    s.env = { DB_URL: pg.url(DB) };
    await s.startHost({ INSTANCE: 'host-a' });
    await s.startVmm();
  });

  afterAll(async () => {
    await hostB?.stop('SIGKILL');
    pg?.stop();
  });

  const count = async (sql: string, params: unknown[] = []): Promise<number> => Number((await pg.query<{ n: string }>(DB, sql, params))[0].n);

  it('runs the guest demo and a VM teardown with every journal row in PostgreSQL, each naming its app and instance', async () => {
    const s = stack();
    const before = await pool(s.host.url);
    const d = restDriver(s);
    const { vmId, copied, bytes } = await runDemo(d);
    expect(copied.equals(bytes)).toBe(true);
    // The guest dies with its VM: read its journal first.
    const guest = await restJournal(d.guestUrls.get(vmId) as string);
    expect(await count(`SELECT count(*) AS n FROM journal WHERE app = 'guest' AND instance = 'guest'`)).toBe(guest.length);
    await d.deleteVm(vmId);
    await eventually(async () => ((await pool(s.host.url)).allocated === before.allocated ? true : undefined), 10_000, 'the VM host process released its PASIDs');
    const host = await restJournal(s.host.url);
    const vmm = await restJournal(s.vmmApp.url);
    expect(await count(`SELECT count(*) AS n FROM journal WHERE app = 'host-kernel' AND instance = 'host-a'`)).toBe(host.length);
    expect(await count(`SELECT count(*) AS n FROM journal WHERE app = 'vmm' AND instance = 'vmm'`)).toBe(vmm.length);
    expect(await count(`SELECT count(*) AS n FROM journal`)).toBe(host.length + vmm.length + (await count(`SELECT count(*) AS n FROM journal WHERE app = 'guest'`)));
    expect(await count(`SELECT count(*) AS n FROM journal WHERE app = 'guest'`)).toBeGreaterThanOrEqual(guest.length);
    const mapPasid = host.find((r) => r.operation === 'kvm.map_pasid') as JournalEvent;
    const [stored] = await pg.query<{ args: string; trace_id: string; wall_ms: string }>(DB, `SELECT args, trace_id, wall_ms FROM journal WHERE seq = $1`, [mapPasid.seq]);
    expect({ args: JSON.parse(stored.args), traceId: stored.trace_id, wallMs: Number(stored.wall_ms) }).toEqual({ args: mapPasid.args, traceId: mapPasid.traceId, wallMs: mapPasid.wallMs });
    // The VM's host process died with the VM: the process table says so, in PostgreSQL.
    const vmPid = Number((host.find((r) => r.operation === 'kvm.create_vm')?.actor ?? '').replace('pid:', ''));
    const exit = host.find((r) => r.operation === 'event.process-exit' && r.object === `process:${vmPid}`) as JournalEvent;
    expect(await pg.query(DB, `SELECT state, exit_reason FROM process WHERE instance = 'host-a' AND pid = $1`, [vmPid])).toEqual([{ state: 'exited', exit_reason: (exit.args as { reason: string }).reason }]);
    expect(await pg.query(DB, `SELECT state FROM vm WHERE instance = 'vmm' AND id = $1`, [vmId])).toEqual([]);
  });

  it('refuses UPDATE, DELETE and TRUNCATE of the journal in PostgreSQL itself', async () => {
    const rows = await count(`SELECT count(*) AS n FROM journal`);
    await expect(pg.query(DB, `UPDATE journal SET errno = 'EIO' WHERE seq = 1`)).rejects.toThrow(/journal is append-only/);
    await expect(pg.query(DB, `DELETE FROM journal WHERE seq = 1`)).rejects.toThrow(/journal is append-only/);
    await expect(pg.query(DB, `TRUNCATE journal`)).rejects.toThrow(/journal is append-only/);
    expect(await count(`SELECT count(*) AS n FROM journal`)).toBe(rows);
    expect(await count(`SELECT count(*) AS n FROM journal WHERE errno = 'EIO' AND seq = 1`)).toBe(0);
  });

  it('serializes concurrent calls on the asynchronous journal: every ALLOC gets its own id and its own row', async () => {
    const s = stack();
    const p = await s.hostProcess('concurrent');
    const fd = await p.k.openIoasid();
    const ids = await Promise.all(Array.from({ length: 16 }, () => p.k.alloc(fd)));
    expect(new Set(ids).size).toBe(16);
    const rows = await pg.query<{ result: string }>(DB, `SELECT result FROM journal WHERE app = 'host-kernel' AND operation = 'ioasid.alloc' AND actor = $1 ORDER BY seq`, [`pid:${p.pid}`]);
    expect(rows.map((r) => (JSON.parse(r.result) as { ioasid: number }).ioasid).sort((a, b) => a - b)).toEqual([...ids].sort((a, b) => a - b));
  });

  it('reboots the host kernel on the same database: processes exited, pids never reused', async () => {
    const s = stack();
    const { pid } = await s.hostProcess('before-reboot');
    await s.host.stop('SIGKILL');
    await s.startHost({ INSTANCE: 'host-a' });
    expect(await pg.query(DB, `SELECT state, exit_reason FROM process WHERE instance = 'host-a' AND pid = $1`, [pid])).toEqual([{ state: 'exited', exit_reason: 'host-kernel restart' }]);
    expect((await s.hostProcess('after-reboot')).pid).toBeGreaterThan(pid);
    // The VMM follows the new host kernel's port for the test after this one.
    await s.vmmApp.stop('SIGTERM');
    await s.startVmm();
  });

  it('lets a second host kernel share the database: its own pids and rows, and audit by instance or fleet-wide', async () => {
    const s = stack();
    hostB = await spawnApp('host-kernel', { DB_URL: pg.url(DB), INSTANCE: 'host-b', ADMIN_TOKEN: HOST_ADMIN, AUDIT_TOKEN: AUDIT, MEMORY_MIB: '256', DATA_DIR: `${s.dataDir}/host-b` });
    const created = await http('POST', `${hostB.url}/v1/processes`, { body: { comm: 'on-b' } });
    expect(created.status).toBe(201);
    const pidB = (created.body as { pid: number }).pid;
    // host-b's pids start afresh: the same number as one of host-a's, in its own rows.
    expect(await count(`SELECT count(*) AS n FROM process WHERE pid = $1`, [pidB])).toBe(2);
    const own = (await http('GET', `${hostB.url}/v1/audit/events?limit=10000`, { token: AUDIT })).body as JournalEvent[];
    expect(own.length).toBe(await count(`SELECT count(*) AS n FROM journal WHERE app = 'host-kernel' AND instance = 'host-b'`));
    expect(new Set(own.map((r) => r.instance))).toEqual(new Set(['host-b']));
    const ofA = (await http('GET', `${hostB.url}/v1/audit/events?limit=10000&instance=host-a`, { token: AUDIT })).body as JournalEvent[];
    expect(ofA.length).toBe(await count(`SELECT count(*) AS n FROM journal WHERE app = 'host-kernel' AND instance = 'host-a'`));
    expect(ofA.length).toBeGreaterThan(0);
    const fleet = (await http('GET', `${s.host.url}/v1/audit/events?limit=10000&instance=*`, { token: AUDIT })).body as JournalEvent[];
    expect(fleet.length).toBe(own.length + ofA.length);
    expect((await http('GET', `${s.host.url}/v1/audit/events?instance=bad%20name`, { token: AUDIT })).status).toBe(400);
  });
});
