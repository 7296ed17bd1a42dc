// What an operator looks at, on a stack that ran the demo: structured logs, /metrics, the /ui page in a real
// headless chromium, and the CLI's every command against the live apps.
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { JournalEvent } from '../libs/shared/src/journal/journal';
import { openBrowser } from './harness/browser';
import { restDriver, restJournal, runDemo } from './harness/demo-flow';
import { useStack } from './harness/hooks';
import { AUDIT, HOST_ADMIN, http, VMM_ADMIN } from './harness/stack';

const run = promisify(execFile);
const CLI = join(__dirname, '..', 'scripts', 'cli.js');

/** Prometheus text → value of one series (name and every label given must match; absent = 0). */
function series(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-z_]+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) total += Number(m[3]);
  }
  return total;
}

describe('the operator plane', () => {
  const stack = useStack(async (s) => {
    await s.startHost({ LOG_LEVEL: 'debug' });
    await s.startVmm();
  });
  let guestUrl = '';
  let bindTrace = '';
  let ppasid = 0;
  let cliEnv: Record<string, string> = {};

  const cli = async (args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> => {
    try {
      const r = await run(process.execPath, [CLI, ...args], { env: { ...cliEnv, ...env }, timeout: 20_000 });
      return { code: 0, stdout: r.stdout, stderr: r.stderr };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  };
  const json = async <T>(args: string[]): Promise<T> => {
    const r = await cli([...args, '--json']);
    if (r.code !== 0) throw new Error(`cli ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  };

  beforeAll(async () => {
    const s = stack();
    const d = restDriver(s);
    const { vmId } = await runDemo(d);
    guestUrl = d.guestUrls.get(vmId) as string;
    const bind = ((await http('GET', `${guestUrl}/v1/audit/events?operation=sva.bind`, { token: AUDIT })).body as JournalEvent[])[0];
    bindTrace = bind.traceId;
    const hostRows = (await http('GET', `${s.host.url}/v1/audit/events?trace=${bindTrace}`, { token: AUDIT })).body as JournalEvent[];
    ppasid = (hostRows.find((r) => r.operation === 'ioasid.alloc')?.result as { ioasid: number }).ioasid;
    cliEnv = { PATH: process.env.PATH ?? '', DATA_DIR: mkdtempSync(join(tmpdir(), 'ioasid-lab-cli-')), HOST_KERNEL_URL: s.host.url, VMM_URL: s.vmmApp.url, GUEST_URL: guestUrl, HOST_ADMIN_TOKEN: HOST_ADMIN, VMM_ADMIN_TOKEN: VMM_ADMIN, AUDIT_TOKEN: AUDIT };
  });

  it('logs one JSON line per event, each naming the app, and the calls with their trace, span, actor and operation', () => {
    const lines = stack().host.stderr.filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) expect(l.app).toBe('host-kernel');
    const row = lines.find((l) => l.msg === 'journal row' && l.operation === 'kvm.map_pasid');
    expect(row).toMatchObject({ traceId: bindTrace, actor: expect.stringMatching(/^pid:\d+$/), spanId: expect.stringMatching(/^[0-9a-f]{16}$/) });
    const request = lines.find((l) => l.msg === 'request' && l.operation === 'POST /v1/kvm/:fd/map-pasid');
    expect(request).toMatchObject({ traceId: bindTrace, actor: row?.actor, status: 204, spanId: expect.stringMatching(/^[0-9a-f]{16}$/) });
  });

  it('/metrics needs the audit token and counts requests by route template, journal rows and VMM state exactly', async () => {
    const s = stack();
    expect((await http('GET', `${s.host.url}/metrics`)).status).toBe(401);
    expect((await http('GET', `${s.host.url}/metrics`, { token: HOST_ADMIN })).status).toBe(401);
    const labels = { method: 'GET', route: '/v1/vfio/devices', status: '200' };
    const before = (await http('GET', `${s.host.url}/metrics`, { token: AUDIT })).text;
    for (let i = 0; i < 3; i++) expect((await http('GET', `${s.host.url}/v1/vfio/devices`, { token: HOST_ADMIN })).status).toBe(200);
    const after = (await http('GET', `${s.host.url}/metrics`, { token: AUDIT })).text;
    expect(series(after, 'ioasid_lab_http_requests_total', labels) - series(before, 'ioasid_lab_http_requests_total', labels)).toBe(3);
    expect(series(after, 'ioasid_lab_http_request_duration_seconds_count', { method: 'GET', route: '/v1/vfio/devices' }) - series(before, 'ioasid_lab_http_request_duration_seconds_count', { method: 'GET', route: '/v1/vfio/devices' })).toBe(3);
    // Reads are not journaled: every row the host journal holds was counted once, under its operation.
    const rows = await restJournal(s.host.url);
    expect(series(after, 'ioasid_lab_journal_rows_total')).toBe(rows.length);
    expect(series(after, 'ioasid_lab_journal_rows_total', { operation: 'kvm.map_pasid', outcome: 'ok' })).toBe(rows.filter((r) => r.operation === 'kvm.map_pasid' && r.errno === null).length);
    const vmm = (await http('GET', `${s.vmmApp.url}/metrics`, { token: AUDIT })).text;
    expect(series(vmm, 'ioasid_lab_vms', { state: 'running' })).toBe(1);
    const descriptors = (await restJournal(s.vmmApp.url)).filter((r) => r.operation === 'viommu.invalidate' && r.errno === null).flatMap((r) => (r.args as { descriptors: unknown[] }).descriptors);
    expect(series(vmm, 'ioasid_lab_viommu_invalidation_descriptors_total')).toBe(descriptors.length);
    expect((await http('GET', `${guestUrl}/metrics`, { token: AUDIT })).status).toBe(200);
  });

  it('/ui draws a trace across guest, vmm and host-kernel with MAP_PASID in chromium, and shows the host state and a PASID timeline', async () => {
    const s = stack();
    const browser = await openBrowser();
    try {
      const page = await browser.context.newPage();
      // Each app is its own origin: the page asks for the audit token once per app (sessionStorage).
      const open = async (url: string): Promise<void> => {
        await page.goto(url);
        await page.fill('#token', AUDIT);
        await page.click('#token-form button');
      };
      await open(`${guestUrl}/ui?trace=${bindTrace}`);
      await page.waitForSelector('#diagram svg', { timeout: 20_000 });
      const actors = await page.$$eval('#diagram svg text.actor', (ts) => ts.map((t) => t.textContent?.trim()));
      expect(actors).toEqual(expect.arrayContaining(['guest', 'vmm', 'host-kernel']));
      const messages = await page.$$eval('#diagram svg text.messageText', (ts) => ts.map((t) => t.textContent ?? ''));
      expect(messages.some((m) => m.includes('KVM_MAP_PASID'))).toBe(true);
      expect(await page.getAttribute('#download-svg', 'download')).toBe(`trace-${bindTrace}.svg`);
      expect(await page.getAttribute('#download-mmd', 'href')).toMatch(/^blob:/);
      // The trace list holds the bind trace too.
      await page.click('nav button[data-tab="traces"]');
      await page.waitForSelector('#trace-list tbody tr');

      const state = (await http('GET', `${s.host.url}/v1/audit/state`, { token: AUDIT })).body as { state: { routes: unknown[]; ioasids: unknown[] } };
      await open(`${s.host.url}/ui?tab=state`);
      await page.waitForSelector('#state-view table');
      const sections = await page.$$eval('#state-view h2', (hs) => hs.map((h) => h.textContent));
      expect(sections).toEqual(['PASID pool', 'Processes and fds', 'ioasids', 'Device routes', 'KVM vPASID → pPASID tables', 'Devices']);
      const rowsUnder = (title: string): Promise<number> => page.getByRole('heading', { name: title, exact: true }).locator('xpath=following-sibling::table[1]/tbody/tr').count();
      expect(await rowsUnder('Device routes')).toBe(state.state.routes.length);
      expect(await rowsUnder('ioasids')).toBe(state.state.ioasids.length);

      const epochs = (await http('GET', `${s.host.url}/v1/audit/pasids/${ppasid}`, { token: AUDIT })).body as Array<{ access: unknown[] }>;
      await page.goto(`${s.host.url}/ui?pasid=${ppasid}`);
      await page.waitForSelector('#timeline .epoch');
      expect(await page.$$eval('#timeline .epoch', (es) => es.length)).toBe(epochs.length);
      expect(await page.$$eval('#timeline .lane', (ls) => ls.length)).toBe(epochs.reduce((n, e) => n + 1 + e.access.length, 0));
      if (process.env.UI_SCREENSHOT) {
        await page.goto(`${guestUrl}/ui?trace=${bindTrace}`);
        await page.waitForSelector('#diagram svg');
        await page.screenshot({ path: process.env.UI_SCREENSHOT, fullPage: false });
      }
    } finally {
      await browser.close();
    }
  });

  it('the CLI answers every command from the live stack, as tables and as JSON', async () => {
    const s = stack();
    const status = await json<{ apps: Array<{ app: string; status: string }>; vms: Array<{ name: string }> }>(['status']);
    expect(status.apps.map((a) => [a.app, a.status])).toEqual([['host-kernel', 'ok'], ['vmm', 'ok'], ['guest', 'ok']]);
    expect((await cli(['status'])).stdout).toContain('demo');
    expect(await json(['vms'])).toEqual((await http('GET', `${s.vmmApp.url}/v1/vms`, { token: VMM_ADMIN })).body);
    const pool = (await http('GET', `${s.host.url}/v1/hw/pasids`, { token: HOST_ADMIN })).body;
    expect(await json(['pasids'])).toEqual(pool);
    expect(await json(['pasids', String(ppasid)])).toMatchObject({ pasid: ppasid, state: 'free' });
    const { state } = (await http('GET', `${s.host.url}/v1/audit/state`, { token: AUDIT })).body as { state: { ioasids: Array<{ owner: { pid: number } }> } };
    const busiest = await json<{ pool: unknown; holders: Array<{ pid: number; ioasids: number }> }>(['pasids', '--state']);
    expect(busiest.pool).toEqual(pool);
    for (const h of busiest.holders) expect(h.ioasids).toBe(state.ioasids.filter((i) => i.owner.pid === h.pid).length);
    expect(busiest.holders.reduce((n, h) => n + h.ioasids, 0)).toBe(state.ioasids.length);
    expect(await json(['faults'])).toEqual((await http('GET', `${s.host.url}/v1/hw/iommu/faults`, { token: HOST_ADMIN })).body);
    const events = await json<JournalEvent[]>(['events', `trace=${bindTrace}`]);
    expect(events).toEqual((await http('GET', `${guestUrl}/v1/audit/events?trace=${bindTrace}&federate=true`, { token: AUDIT })).body);
    expect(new Set(events.map((e) => e.app))).toEqual(new Set(['guest', 'vmm', 'host-kernel']));
    expect((await cli(['events', `trace=${bindTrace}`])).stdout.trim().split('\n')).toHaveLength(events.length);
    expect((await json<Array<{ traceId: string }>>(['traces', '--limit', '100'])).map((t) => t.traceId)).toContain(bindTrace);
    expect((await cli(['sequence', bindTrace])).stdout).toContain('KVM_MAP_PASID');
    expect((await cli(['sequence', bindTrace, '--operations'])).stdout).toContain('vmm->>host-kernel: kvm.map_pasid');
    const history = await json<JournalEvent[]>(['history', String(ppasid)]);
    expect(history.length).toBeGreaterThan(0);
    for (const r of history) expect(r.object).toBe(`ioasid:${ppasid}`);
    expect((await cli(['access', String(ppasid)])).stdout.split('\n')[0]).toMatch(new RegExp(`^pPASID ${ppasid} `));
    expect(await json(['access', String(ppasid)])).toEqual((await http('GET', `${s.host.url}/v1/audit/pasids/${ppasid}`, { token: AUDIT })).body);
  });

  it('the CLI follows the live journal (watch), has help for every command, and exits with codes that say what went wrong', async () => {
    const s = stack();
    const watching = cli(['watch', '--app', 'host-kernel', '--count', '1', '--interval', '50']);
    // watch first reads to the end, then prints what comes after: keep making host calls until it has printed one.
    let finished = false;
    void watching.then(() => (finished = true));
    for (const deadline = Date.now() + 15_000; !finished && Date.now() < deadline; ) {
      await s.hostProcess('watched');
      await new Promise((r) => setTimeout(r, 100));
    }
    const watched = await watching;
    expect(watched.code).toBe(0);
    expect(watched.stdout).toMatch(/host-kernel .* process\.create /);
    for (const cmd of ['status', 'vms', 'pasids', 'faults', 'events', 'traces', 'sequence', 'history', 'access', 'watch']) {
      const h = await cli([cmd, '--help']);
      expect([cmd, h.code]).toEqual([cmd, 0]);
      expect(h.stdout).toContain(`Usage: npm run cli -- ${cmd}`);
    }
    expect((await cli(['pasids', 'twelve'])).code).toBe(64);
    expect((await cli(['no-such-command'])).code).toBe(64);
    expect((await cli(['faults'], { HOST_ADMIN_TOKEN: 'not-the-admin-token' })).code).toBe(77);
    expect((await cli(['faults'], { HOST_KERNEL_URL: 'http://127.0.0.1:9' })).code).toBe(69);
    expect((await cli(['sequence', 'not-a-trace'])).code).toBe(65);
  });
});
