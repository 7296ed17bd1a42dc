// The fuzzer on the in-process stack: a short fixed-seed campaign holds every invariant of DESIGN §11 and leaks
// nothing; and a real defect planted in the host kernel (a device's reference to an ioasid never dropped) stops a
// campaign, which writes a minimized scenario and a recording that both show the same failure again. A campaign of
// several runs (--runs, --for) runs consecutive seeds and sums them.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JournalEvent } from '@app/shared/journal/journal';
import { IoasidLayer } from '../apps/host-kernel/src/ioasid/ioasid-layer';
import { readRecording } from '../replay/recording';
import { replay } from '../replay/replayer';
import { parseScenario } from '../replay/scenario/parse';
import { runScenario } from '../replay/scenario/runner';
import { fuzzMain } from './cli';
import { CONTRACT, Coverage } from './coverage';
import { fuzz } from './fuzzer';
import { CHECKS } from '../replay/invariants';
import { VIOLATION_FILE, writeArtifacts } from './report';

const TENANTS = 4;

describe('the stateful fuzzer (in process)', () => {
  const out = mkdtempSync(join(tmpdir(), 'fuzz-'));
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it('runs a fixed-seed campaign of every tenant kind with every check after every step, and nothing is violated or leaked', async () => {
    const ops = 150;
    const r = await fuzz({ seed: 1, ops, inProcess: true, tenants: TENANTS });
    expect(r.violations).toEqual([]);
    expect(r.leaks).toBe(0);
    expect(r.run.fiveXX).toBe(0);
    // The campaign's operations, then the teardown (every VM deleted, every process exited).
    expect(r.ops.filter((o) => !o.name.startsWith('teardown/')).length).toBe(ops);
    const m = r.run.session.monitor;
    expect(m?.checks).toHaveLength(CHECKS.length);
    expect(m?.checksRun).toBe(CHECKS.length * (m?.observations ?? -1));
    expect(m?.observations).toBeGreaterThan(ops);
    // Honest and hostile tenants alike ran, and the stack refused some of what they asked.
    const kinds = new Set([...r.coverage.repertoire.keys()].map((k) => k.split('/')[0]));
    for (const k of ['host', 'guest', 'rogue']) expect(kinds).toContain(k);
    const host = r.coverage.reached('host-kernel');
    // The kernel's boot counts too: the campaign's stack ran it.
    expect(host.ok).toEqual(expect.arrayContaining(['kernel.boot', 'ioasid.alloc', 'vfio.allow_ioasid', 'kvm.map_pasid']));
    expect(host.errnos.size).toBeGreaterThan(0);
    for (const app of Object.keys(CONTRACT) as Array<keyof typeof CONTRACT>) expect(r.coverage.reached(app).ok.length).toBeGreaterThan(0);
  }, 60_000);

  it('a campaign of several runs: consecutive seeds, each on a fresh stack, the totals their sums, until --runs or --for', async () => {
    const log = jest.spyOn(console, 'log').mockImplementation(() => undefined);
    const err = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(await fuzzMain(['--seed', '11', '--ops', '40', '--in-process', '--tenants', '3', '--runs', '2'])).toBe(0);
      const text = log.mock.calls.map((c) => String(c[0])).join('\n');
      const perSeed = [...text.matchAll(/^seed (\d+): (\d+) operations \((\d+) steps\).*, 0 violations, 0 5xx, 0 leaks$/gm)];
      expect(perSeed.map((m) => Number(m[1]))).toEqual([11, 12]);
      const sum = (i: number): number => perSeed.reduce((n, m) => n + Number(m[i]), 0);
      expect(text).toContain('fuzz campaign, seeds 11–12 in-process, 3 tenants, 40 operations each');
      expect(text).toMatch(new RegExp(`^  runs +2$`, 'm'));
      expect(text).toMatch(new RegExp(`^  operations +${sum(2)} \\(${sum(3)} steps\\)`, 'm'));
      // --for 0: the first run always starts, and none after it.
      log.mockClear();
      expect(await fuzzMain(['--seed', '13', '--ops', '20', '--in-process', '--tenants', '3', '--for', '0'])).toBe(0);
      expect(log.mock.calls.map((c) => String(c[0])).filter((l) => /^seed \d+:/.test(l)).map((l) => l.split(':')[0])).toEqual(['seed 13']);
      // --jobs alone names no campaign: refused before anything runs.
      log.mockClear();
      await expect(fuzzMain(['--seed', '13', '--ops', '20', '--in-process', '--jobs', '2'])).rejects.toThrow(/give --runs <r> or --for <seconds> too/);
      expect(log).not.toHaveBeenCalled();
    } finally {
      log.mockRestore();
      err.mockRestore();
    }
  }, 60_000);

  it("Coverage.merge adds another run's counts, operation by operation and outcome by outcome", () => {
    const a = new Coverage();
    const b = new Coverage();
    const row = (operation: string, errno: string | null): JournalEvent => ({ operation, errno }) as JournalEvent; // what rows() reads of one
    a.rows(new Map([['host-kernel', [row('ioasid.alloc', null), row('ioasid.alloc', 'ENOSPC')]]]));
    b.rows(new Map([['host-kernel', [row('ioasid.alloc', null)]], ['guest-3', [row('sva.bind', 'ENODEV')]]]));
    a.op('host/alloc', 'ok');
    b.op('host/alloc', 'ok');
    b.op('guest/bind', 'ENODEV');
    a.merge(b);
    expect(Object.fromEntries(a.outcomes('host-kernel', 'ioasid.alloc'))).toEqual({ ok: 2, ENOSPC: 1 });
    expect(Object.fromEntries(a.outcomes('guest', 'sva.bind'))).toEqual({ ENODEV: 1 });
    expect(Object.fromEntries(a.repertoire.get('host/alloc') ?? [])).toEqual({ ok: 2 });
    expect(Object.fromEntries(a.repertoire.get('guest/bind') ?? [])).toEqual({ ENODEV: 1 });
    // b is unchanged.
    expect(Object.fromEntries(b.outcomes('host-kernel', 'ioasid.alloc'))).toEqual({ ok: 1 });
  });

  it('stops at a planted defect and writes a minimized scenario and a recording that show the same violation', async () => {
    // The defect: dropping a device's (or a KVM entry's) reference to an ioasid forgets to drop it. A child's still goes.
    const put = IoasidLayer.prototype.put;
    const spy = jest.spyOn(IoasidLayer.prototype, 'put').mockImplementation(function (this: IoasidLayer, tx, ioasid, key) {
      if (key.startsWith('child:')) put.call(this, tx, ioasid, key);
    });
    try {
      const r = await fuzz({ seed: 1, ops: 400, inProcess: true, tenants: TENANTS });
      const checks = new Set(r.violations.map((v) => v.check));
      expect(checks.size).toBeGreaterThan(0);
      expect(checks).toContain('device-holders-are-routes');
      const a = await writeArtifacts(r, { outDir: join(out, 'planted'), inProcess: true, budgetMs: 30_000 });
      expect(a.reproduced).toBe(true);
      expect(a.kept).toBeLessThan(a.of);
      // The scenario fails on the same check, at its last step.
      const scenario = parseScenario(a.scenario);
      const s = await runScenario(scenario, { inProcess: true, outDir: join(out, 'scenario'), replay: false });
      expect(s.steps).toBe(scenario.steps.length - 1);
      const saved = JSON.parse(readFileSync(join(a.recording as string, VIOLATION_FILE), 'utf8')) as { checks: string[] };
      expect(saved.checks).toContain('device-holders-are-routes');
      expect(s.failure).toMatch(new RegExp(`invariant (${saved.checks.join('|')}) violated`));
      // The recording replays to the same violation (the replay tool turns the checks on for it by itself).
      const rp = await replay(readRecording(a.recording as string), { inProcess: true, invariants: true });
      expect(rp.divergence).toBeNull();
      expect(new Set(rp.violation?.violations.map((v) => v.check))).toEqual(new Set(saved.checks));
      // Without the defect, the same scenario holds every invariant.
      spy.mockRestore();
      const fixed = await runScenario(parseScenario(a.scenario), { inProcess: true, outDir: join(out, 'fixed'), replay: false });
      expect(fixed.failure ?? '').not.toMatch(/invariant .* violated/);
    } finally {
      spy.mockRestore();
    }
  }, 120_000);
});
