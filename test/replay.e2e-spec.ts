// Replay over REST (DESIGN §9): every shipped scenario's recording (made in process: both doors journal the same
// rows) replayed on three freshly spawned apps with no divergence; one scenario with a SIGKILL and a restart
// also run over REST and replayed on both transports; the `npm run replay` CLI's exit codes (0 clean,
// 1 divergence, 2 an unreadable recording, naming the line) and `--export` of a stopped stack's data dir.
// (Each spawned stack costs seconds: one per scenario here; the in-process runs are unit tests.)
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readRecording } from '../replay/recording';
import { replay } from '../replay/replayer';
import { parseScenario } from '../replay/scenario/parse';
import { runScenario } from '../replay/scenario/runner';

const ROOT = join(__dirname, '..');
const SCENARIOS = join(ROOT, 'scenarios');
const out = mkdtempSync(join(tmpdir(), 'replay-e2e-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

/** The replay CLI as `npm run replay` runs it (compiling the tools first when they are stale). */
function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts/tools.js'), 'replay', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 240_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('scenarios over REST', () => {
  it.each(readdirSync(SCENARIOS).filter((f) => f.endsWith('.yaml')))(
    '%s: its recording replays on freshly spawned apps with no divergence',
    async (file) => {
      const dir = join(out, file);
      const r = await runScenario(parseScenario(join(SCENARIOS, file)), { inProcess: true, outDir: dir, replay: false });
      expect(r.failure).toBeNull();
      const overRest = await replay(readRecording(dir), { inProcess: false });
      expect(overRest.divergence).toBeNull();
      expect(overRest.compared).toBe(r.recording.length);
      expect(overRest.inputs).toBe(r.recording.filter((x) => x.input).length);
    },
    120_000,
  );

  it('malformed requests, run on the spawned apps: REST answers each with the errno and message the in-process door gave', async () => {
    // The scenario's expectations were held in process (scenarios.spec); here the REST pipes must answer the same.
    const r = await runScenario(parseScenario(join(SCENARIOS, 'malformed-requests.yaml')), { inProcess: false, outDir: join(out, 'rest-malformed'), replay: false });
    expect(r.failure).toBeNull();
    expect(r.steps).toBe(parseScenario(join(SCENARIOS, 'malformed-requests.yaml')).steps.length);
  }, 120_000);

  it('the VMM killed between ALLOW and MAP_PASID, run on the spawned apps: its REST recording replays over REST and in process', async () => {
    const dir = join(out, 'rest-crash');
    const r = await runScenario(parseScenario(join(SCENARIOS, 'vmm-killed-between-allow-and-map.yaml')), { inProcess: false, outDir: dir });
    expect(r.failure).toBeNull();
    expect(r.replay).toMatchObject({ divergence: null, compared: r.recording.length });
    // The kill and the restart are inputs of the operator's own journal, before what they caused.
    const ops = r.recording.filter((x) => x.journal === 'operator').map((x) => x.operation);
    expect(ops).toEqual(['operator.http', 'operator.kill', 'operator.restart']);
    const inProcess = await replay(readRecording(dir), { inProcess: true });
    expect(inProcess.divergence).toBeNull();
    expect(inProcess.compared).toBe(r.recording.length);
  }, 180_000);
});

describe('npm run replay', () => {
  it('exits 0 on a clean recording, 1 on an edited one (naming the row), 2 on a truncated one (naming the line)', () => {
    const dir = join(out, 'malicious-guest.yaml');
    const clean = cli(dir, '--in-process');
    expect(clean.stdout).toMatch(/replayed \d+ inputs, compared \d+ rows: no divergence/);
    expect(clean.status).toBe(0);

    const file = join(dir, 'recording.jsonl');
    const text = readFileSync(file, 'utf8');
    const rows = text.trimEnd().split('\n').map((l) => JSON.parse(l) as { journal: string; operation: string; seq: number; errno: string | null });
    const i = rows.findIndex((r) => r.journal === 'vmm' && r.operation === 'vcpu.wrmsr' && r.errno === 'EINVAL');
    const edited = rows.map((r, n) => JSON.stringify(n === i ? { ...r, errno: 'EPERM' } : r));
    writeFileSync(file, edited.join('\n') + '\n');
    const diverged = cli(dir, '--in-process');
    expect(diverged.status).toBe(1);
    expect(diverged.stdout).toContain(`first divergence at vmm:${rows[i].seq} (errno differ)`);
    expect(diverged.stdout).toContain('```mermaid');

    writeFileSync(file, text.slice(0, text.length - 10));
    const truncated = cli(dir);
    expect(truncated.status).toBe(2);
    expect(truncated.stderr).toContain(`recording.jsonl line ${rows.length}: truncated`);
    writeFileSync(file, text);
  }, 300_000);

  it('--export writes a recording of a stopped stack’s data dir that replays', () => {
    // The scenario run above left each app's database in the recording; a data dir is any folder holding them.
    const data = join(out, 'data-dir');
    execFileSync('cp', ['-r', join(out, 'two-vms-shared-vpasid.yaml'), data]);
    for (const f of readdirSync(data)) if (!f.endsWith('.db')) rmSync(join(data, f), { recursive: true, force: true });
    const exported = join(out, 'exported');
    const ex = cli('--export', data, exported, '--seed', '1');
    expect(ex.status).toBe(0);
    expect(ex.stdout).toMatch(/exported \d+ rows of .*guest-1.*guest-2/);
    expect(readFileSync(join(exported, 'recording.jsonl'), 'utf8')).toBe(readFileSync(join(out, 'two-vms-shared-vpasid.yaml', 'recording.jsonl'), 'utf8'));
    const r = cli(exported, '--in-process');
    expect(r.status).toBe(0);
  }, 300_000);
});
