// A throwaway PostgreSQL server for the tests that run the apps on it (DESIGN §12): Debian's `postgresql`
// package (.ci/run installs it), a fresh cluster in a temp directory, started on a free loopback port with
// trust authentication, as a non-root user (initdb refuses root: as root, the package's `postgres` user).
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';

/** initdb and pg_ctl: from PATH when there, else the newest /usr/lib/postgresql/<major>/bin. */
function pgBin(tool: string): string {
  const root = '/usr/lib/postgresql';
  const majors = existsSync(root) ? readdirSync(root).filter((d) => /^\d+$/.test(d)).sort((a, b) => Number(b) - Number(a)) : [];
  for (const m of majors) if (existsSync(join(root, m, 'bin', tool))) return join(root, m, 'bin', tool);
  return tool;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

export class TestPostgres {
  private constructor(
    readonly dir: string,
    readonly port: number,
    private readonly asUser: (cmd: string, args: string[]) => void,
  ) {}

  /** A URL for database `db` (created by createDatabase). */
  url(db: string): string {
    return `postgres://lab@127.0.0.1:${this.port}/${db}`;
  }

  static async start(): Promise<TestPostgres> {
    const dir = mkdtempSync(join(tmpdir(), 'ioasid-lab-pg-'));
    const root = userInfo().uid === 0;
    const runAs = (cmd: string, args: string[]): void => {
      const full = root ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
      execFileSync(full[0] as string, full[1] as string[], { stdio: 'pipe', cwd: dir });
    };
    if (root) {
      chmodSync(dir, 0o700);
      const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
      const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
      chownSync(dir, uid, gid);
    }
    const port = await freePort();
    const data = join(dir, 'data');
    runAs(pgBin('initdb'), ['-D', data, '-U', 'lab', '--auth=trust', '--no-sync', '-E', 'UTF8']);
    runAs(pgBin('pg_ctl'), ['-D', data, '-l', join(dir, 'log'), '-w', '-t', '30', '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`, 'start']);
    return new TestPostgres(dir, port, runAs);
  }

  async createDatabase(db: string): Promise<void> {
    await this.query('postgres', `CREATE DATABASE ${db}`);
  }

  /** One statement on database `db`; its rows. */
  async query<T = Record<string, unknown>>(db: string, sql: string, params: unknown[] = []): Promise<T[]> {
    const c = new Client({ connectionString: this.url(db) });
    await c.connect();
    try {
      return (await c.query(sql, params)).rows as T[];
    } finally {
      await c.end();
    }
  }

  stop(): void {
    try {
      this.asUser(pgBin('pg_ctl'), ['-D', join(this.dir, 'data'), '-m', 'immediate', '-w', 'stop']);
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}
