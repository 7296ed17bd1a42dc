import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseScenario } from './parse';
import { runScenario } from './runner';

const DIR = join(__dirname, '..', '..', 'scenarios');

describe('every shipped scenario, in process', () => {
  const out = mkdtempSync(join(tmpdir(), 'scenarios-'));
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it.each(readdirSync(DIR).filter((f) => f.endsWith('.yaml')))('%s holds its expectations and replays with no divergence', async (file) => {
    const scenario = parseScenario(join(DIR, file));
    const r = await runScenario(scenario, { inProcess: true, outDir: join(out, file) });
    expect(r.failure).toBeNull();
    expect(r.steps).toBe(scenario.steps.length);
    expect(r.replay?.divergence).toBeNull();
    expect(r.replay?.inputs).toBe(r.recording.filter((x) => x.input).length);
    expect(r.replay?.compared).toBe(r.recording.length);
    expect(r.traces.length).toBeGreaterThan(0);
  });
});
