// `npm run fuzz` as a campaign on worker threads (`--jobs`): it needs the compiled tools (the worker loads them),
// so it runs here, through scripts/tools.js as a user runs it, and not among the unit tests. Each seed runs on a
// thread of its own and gives exactly the run it gives alone, in this process's order or not.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = join(__dirname, '..');
const out = mkdtempSync(join(tmpdir(), 'fuzz-e2e-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

/** The fuzz CLI as `npm run fuzz` runs it (compiling the tools first when they are stale). */
function fuzzCli(...args: string[]): { status: number | null; stdout: string } {
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts/tools.js'), 'fuzz', ...args, '--out', out], { cwd: ROOT, encoding: 'utf8', timeout: 240_000 });
  return { status: r.status, stdout: r.stdout };
}

/** The per-seed lines, without their timing (the rest is the run: operations, steps, checks, outcomes). */
const runs = (stdout: string): string[] =>
  stdout
    .split('\n')
    .filter((l) => /^seed \d+: /.test(l))
    .map((l) => l.replace(/ in [\d.]+ s = [\d.]+ ops\/s/, ''))
    .sort();

describe('npm run fuzz --jobs', () => {
  it('runs the campaign two seeds at a time, each on its own thread, and each seed is the run it is alone', () => {
    const args = ['--seed', '21', '--ops', '60', '--in-process', '--tenants', '3', '--runs', '3'];
    const parallel = fuzzCli(...args, '--jobs', '2');
    expect(parallel.status).toBe(0);
    const alone = fuzzCli(...args);
    expect(alone.status).toBe(0);
    expect(runs(parallel.stdout)).toHaveLength(3);
    expect(runs(parallel.stdout).map((l) => l.split(':')[0])).toEqual(['seed 21', 'seed 22', 'seed 23']);
    expect(runs(parallel.stdout)).toEqual(runs(alone.stdout));
    expect(parallel.stdout).toContain('fuzz campaign, seeds 21–23 in-process, 3 tenants, 60 operations each, 2 at once');
    expect(parallel.stdout).toMatch(/^ {2}violations +0$/m);
  }, 240_000);
});
