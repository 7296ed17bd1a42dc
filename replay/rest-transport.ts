// The three apps as spawned processes on free ports (test/harness/apps.ts), as a replay transport: requests over
// HTTP carrying the operator's Lamport clock, external events caused for real (SIGKILL, a restart on the same
// data dir, a guest app spawned) and recorded first in the operator's journal (a database in the data dir).
// Quiet means: two polls of every live journal in a row, 15 ms apart, found nothing new.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StackPeerKey } from '@app/shared/auth/stack-peer';
import { createDataSource } from '@app/shared/db';
import type { InputRequest } from '@app/shared/replay/input';
import { Journal, type JournalEvent, type JournalFilter } from '@app/shared/journal/journal';
import { allJournalEvents } from '@app/shared/journal/journal-pages';
import { OPERATOR_RECORDED } from '@app/shared/nest/trace.middleware';
import { newTraceId, runInTrace } from '@app/shared/trace';
import type { DataSource } from 'typeorm';
import { Agent, request } from 'undici';
import { eventRow } from '../stack/stack-events';
import { type AppProcess, spawnApp } from '../test/harness/apps';
import { copyDatabase, readJournalFile } from './databases';
import type { StackConfig } from './recording';
import type { StackRequest, StackResponse, Transport } from './transport';

/** A TCP port nobody listens on right now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

const ADMIN = { 'host-kernel': 'replay-host-admin-token', vmm: 'replay-vmm-admin-token' } as const;
/** The stack's audit token (GET /v1/audit/… of every app; the invariant checks read the state with it). */
export const AUDIT = 'replay-audit-token';
/** The operator holds the stack's audit token, so its `x-lamport` comes with the proof the apps trust it by. */
const PEER_KEY = StackPeerKey.fromAuditToken(AUDIT) as StackPeerKey;
const POLL_MS = 15;
/** The methods built-in fetch sends upper-cased (Fetch standard "normalize a method"); any other goes as given. */
const NORMALIZED = new Set(['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT']);

export class RestTransport implements Transport {
  readonly kind = 'rest' as const;
  readonly dataDir = mkdtempSync(join(tmpdir(), 'ioasid-replay-'));
  private readonly apps = new Map<string, AppProcess>();
  private readonly cursors = new Map<string, number>();
  private readonly pending = new Map<string, JournalEvent[]>();
  /**
   * Keep-alive connections to every app, through undici's own request API: built-in fetch is the same undici under
   * WHATWG streams, and cost this process about 0.5 ms of CPU per call (issue 13; the apps' RestClient moved off
   * it for the same reason). A quiesce alone is three polls of every journal. Not RestClient itself: that turns
   * answers into KernelErrors and keeps its pools for the whole process, while the operator needs every answer as
   * it came and connections that go with this stack (close() destroys them; the next run's apps get new ports).
   */
  private readonly agent = new Agent();
  private operatorDs!: DataSource;
  private operator!: Journal;
  readonly backgroundAnswers: StackResponse[] = [];

  constructor(readonly config: StackConfig) {}

  adminToken(app: 'host-kernel' | 'vmm'): string {
    return ADMIN[app];
  }

  private get seedEnv(): Record<string, string> {
    return this.config.seed === null ? {} : { SEED: String(this.config.seed) };
  }

  private url(journal: string): string {
    const app = this.apps.get(journal);
    if (!app || !app.running) throw new Error(`${journal} is not running`);
    return app.url;
  }

  async start(): Promise<void> {
    mkdirSync(join(this.dataDir, 'operator'), { recursive: true });
    writeFileSync(join(this.dataDir, 'devices.json'), JSON.stringify(this.config.devices));
    this.operatorDs = createDataSource({ path: join(this.dataDir, 'operator', 'operator.db') });
    await this.operatorDs.initialize();
    this.operator = new Journal(this.operatorDs, 'operator');
    await this.operator.recover();
    // The host on a port chosen here, so the VMM (which calls it only once a VM exists) boots beside it.
    const hostPort = await freePort();
    const host = spawnApp('host-kernel', {
      PORT: String(hostPort),
      DATA_DIR: join(this.dataDir, 'host'),
      ADMIN_TOKEN: ADMIN['host-kernel'],
      AUDIT_TOKEN: AUDIT,
      MEMORY_MIB: String(this.config.memoryMiB),
      DEVICES: join(this.dataDir, 'devices.json'),
      ...this.seedEnv,
    });
    this.hostUrl = `http://127.0.0.1:${hostPort}`;
    const [h] = await Promise.all([host, this.startVmm()]);
    this.apps.set('host-kernel', h);
  }

  private hostUrl = '';

  private async startVmm(): Promise<void> {
    const vmm = await spawnApp('vmm', {
      DATA_DIR: join(this.dataDir, 'vmm'),
      ADMIN_TOKEN: ADMIN.vmm,
      AUDIT_TOKEN: AUDIT,
      HOST_KERNEL_URL: this.hostUrl,
      PASID_QUOTA: String(this.config.pasidQuota),
      LAMPORT: String(this.operator.clock.peek()),
      ...(this.config.debugStallBefore ? { DEBUG_STALL_BEFORE: this.config.debugStallBefore } : {}),
      ...this.seedEnv,
    });
    this.apps.set('vmm', vmm);
  }

  /** One HTTP call carrying the operator's clock (and moving it past the answer's). */
  private async http(url: string, method: string, path: string, opts: { token?: string | null; body?: unknown; traceparent?: string | null; recorded?: boolean } = {}): Promise<StackResponse> {
    const lamport = String(this.operator.clock.peek());
    const headers: Record<string, string> = { 'x-caller': 'operator', 'x-lamport': lamport, 'x-lamport-proof': PEER_KEY.sign('lamport', lamport) };
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    if (opts.traceparent) headers.traceparent = opts.traceparent;
    if (opts.recorded) headers[OPERATOR_RECORDED] = '1';
    if (opts.body !== undefined && opts.body !== null) headers['content-type'] = 'application/json';
    const upper = method.toUpperCase();
    let status: number;
    let text: string;
    let answered: string | string[] | undefined;
    try {
      const res = await request(`${url}${path}`, {
        method: NORMALIZED.has(upper) ? upper : method,
        headers,
        body: opts.body === undefined || opts.body === null ? undefined : JSON.stringify(opts.body),
        dispatcher: this.agent,
      });
      status = res.statusCode;
      answered = res.headers['x-lamport'];
      text = await res.body.text();
    } catch (err) {
      // What built-in fetch throws for a connection that failed or broke (an app killed or down): callers match it.
      throw new TypeError('fetch failed', { cause: err });
    }
    this.operator.clock.observe(Number(answered));
    let body: unknown = text;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      /* plain text */
    }
    return { status, body };
  }

  private target(req: StackRequest): string {
    return req.app === 'guest' ? `guest-${req.vm}` : req.app;
  }

  async request(req: StackRequest & { background?: boolean; principal?: string }): Promise<StackResponse> {
    const url = this.url(this.target(req));
    const opts = { token: req.token, body: req.body, traceparent: req.traceparent };
    if (!req.background) return this.http(url, req.method, req.path, opts);
    await this.record({ kind: 'http', app: req.app, ...(req.vm !== undefined ? { vm: req.vm } : {}), method: req.method, path: req.path, body: req.body ?? null, principal: req.principal ?? 'none' });
    // A connection the app never answers (it was killed meanwhile) is no answer at all.
    void this.http(url, req.method, req.path, { ...opts, recorded: true }).then((res) => void this.backgroundAnswers.push(res), () => undefined);
    return { status: 202, body: null };
  }

  /** Records an event in the operator's journal, then hands every live app the operator's clock. */
  private async record(input: InputRequest): Promise<void> {
    await runInTrace({ traceId: newTraceId(), spanId: null, caller: null }, () => this.operator.record(eventRow(input), [], input));
    for (const app of this.apps.values()) if (app.running) await this.http(app.url, 'GET', '/health');
  }

  async boot(vm: number, token: string, traceparent: string | null, pageRequests?: 'ignore'): Promise<void> {
    const guest = await spawnApp('guest', {
      DATA_DIR: join(this.dataDir, `guest-${vm}`),
      VMM_URL: this.url('vmm'),
      VM_ID: String(vm),
      VM_TOKEN: token,
      AUDIT_TOKEN: AUDIT,
      LAMPORT: String(this.operator.clock.peek()),
      ...(traceparent ? { TRACEPARENT: traceparent } : {}),
      ...(pageRequests ? { DEBUG_PAGE_REQUESTS: pageRequests } : {}),
      ...this.seedEnv,
    });
    this.apps.set(`guest-${vm}`, guest);
    await this.http(guest.url, 'GET', '/health');
  }

  async kill(app: 'vmm' | 'guest', vm?: number): Promise<void> {
    await this.record({ kind: 'kill', app, ...(vm !== undefined ? { vm } : {}), signal: 'SIGKILL' });
    const name = app === 'guest' ? `guest-${vm}` : app;
    const proc = this.apps.get(name);
    if (!proc) throw new Error(`${name} is not running`);
    proc.signal('SIGKILL');
    await proc.exited;
    // A guest dies with its VMM (it stops itself when its lifeline ends).
    if (app === 'vmm') for (const [n, p] of this.apps) if (n.startsWith('guest-')) await p.exited;
  }

  async restart(app: 'vmm'): Promise<void> {
    await this.record({ kind: 'restart', app });
    const old = this.apps.get(app);
    if (old?.running) await old.stop('SIGTERM');
    await this.startVmm();
    // The restart rebuilds the running VMs in the background: wait until none is `starting`.
    for (let i = 0; i < 1000; i++) {
      const vms = (await this.http(this.url('vmm'), 'GET', '/v1/vms', { token: ADMIN.vmm })).body as Array<{ state: string }>;
      if (!vms.some((v) => v.state === 'starting')) return;
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  async advance(ms: number): Promise<void> {
    await this.record({ kind: 'advance', app: 'operator', ms });
    this.operator.clock.observe(this.operator.clock.peek() + ms);
    for (const app of this.apps.values()) if (app.running) await this.http(app.url, 'GET', '/health');
  }

  /**
   * Polls every live journal until two rounds in a row, POLL_MS apart, bring nothing new. The first poll is at
   * once: it fetches what the last answered request wrote (committed before its answer), which a first round after
   * a wait would only have found later; the two quiet rounds are then counted from it.
   */
  async quiesce(): Promise<void> {
    await this.poll();
    for (let quiet = 0; quiet < 2; ) {
      await new Promise((r) => setTimeout(r, POLL_MS));
      quiet = (await this.poll()) ? 0 : quiet + 1;
    }
    for (const app of this.apps.values()) if (app.running) await this.http(app.url, 'GET', '/health');
  }

  /** Fetches new rows of every journal, the apps asked at once; true if any. */
  private async poll(): Promise<boolean> {
    const fetched = await Promise.all([...this.apps].map(async ([name, app]) => [name, app.running ? await this.newRowsOf(name, app.url) : this.fromFile(name)] as const));
    let any = false;
    for (const [name, rows] of fetched) {
      if (rows.length === 0) continue;
      any = true;
      this.cursors.set(name, rows[rows.length - 1].seq);
      // Appended in place: a run that never takes them (the fuzzer reads rows through its own source) copied
      // every row fetched so far at every poll that brought one.
      const list = this.pending.get(name);
      if (list) for (const row of rows) list.push(row);
      else this.pending.set(name, rows);
    }
    return any;
  }

  /** A live app's rows after its cursor, through its audit plane (none when it does not answer). */
  private newRowsOf(name: string, url: string): Promise<JournalEvent[]> {
    const audit = {
      events: async (f: JournalFilter): Promise<JournalEvent[]> => {
        const res = await this.http(url, 'GET', `/v1/audit/events?limit=${f.limit}&afterSeq=${f.afterSeq}`, { token: AUDIT }).catch(() => ({ status: 0, body: [] }));
        return Array.isArray(res.body) ? (res.body as JournalEvent[]) : [];
      },
    };
    return allJournalEvents(audit, { afterSeq: this.cursors.get(name) ?? 0 });
  }

  /** A dead app's rows not yet seen, from its database file. */
  private fromFile(name: string): JournalEvent[] {
    const rows = readJournalFile(this.dbFile(name), this.cursors.get(name) ?? 0);
    if (rows.length) this.cursors.set(name, rows[rows.length - 1].seq);
    return rows;
  }

  private dbFile(name: string): string {
    if (name === 'host-kernel') return join(this.dataDir, 'host', 'host-kernel.db');
    if (name === 'vmm') return join(this.dataDir, 'vmm', 'vmm.db');
    return join(this.dataDir, name, 'guest.db');
  }

  /** The journals of every app started so far (`guest-<vm>` for each guest ever booted). */
  journalNames(): string[] {
    return [...this.apps.keys()];
  }

  async newRows(): Promise<Map<string, JournalEvent[]>> {
    await this.poll();
    const out = new Map<string, JournalEvent[]>(this.pending);
    this.pending.clear();
    const after = this.cursors.get('operator') ?? 0;
    const own = await this.operator.events({ afterSeq: after, limit: 10_000 });
    if (own.length) this.cursors.set('operator', own[own.length - 1].seq);
    out.set('operator', own);
    return out;
  }

  async saveDatabases(dir: string): Promise<void> {
    for (const app of this.apps.values()) app.signal('SIGKILL');
    await Promise.all([...this.apps.values()].map((a) => a.exited));
    for (const name of this.apps.keys()) copyDatabase(this.dbFile(name), join(dir, `${name}.db`));
    copyDatabase(join(this.dataDir, 'operator', 'operator.db'), join(dir, 'operator.db'));
  }

  async close(): Promise<void> {
    for (const app of this.apps.values()) app.signal('SIGKILL');
    await Promise.all([...this.apps.values()].map((a) => a.exited));
    if (this.operatorDs?.isInitialized) await this.operatorDs.destroy();
    await this.agent.destroy();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}
