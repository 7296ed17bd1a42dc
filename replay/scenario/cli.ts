// `npm run scenario -- <file.yaml> [--in-process] [--out <dir>]`: runs the scenario, writes its recording and one
// Mermaid diagram per trace (default under out/scenarios/<name>/), replays it, and exits 0 only if every
// expectation held and the replay found no divergence (1 otherwise, 2 for a scenario file it cannot read).
import { basename, join } from 'node:path';
import { parseScenario, ScenarioError } from './parse';
import { runScenario } from './runner';

async function main(argv: string[]): Promise<number> {
  const inProcess = argv.includes('--in-process');
  const outAt = argv.indexOf('--out');
  const out = outAt >= 0 ? argv[outAt + 1] : undefined;
  const files = argv.filter((a, i) => !a.startsWith('--') && (outAt < 0 || i !== outAt + 1));
  if (files.length !== 1) {
    console.error('usage: npm run scenario -- <scenarios/file.yaml> [--in-process] [--out <dir>]');
    return 2;
  }
  const scenario = parseScenario(files[0]);
  const outDir = out ?? join('out', 'scenarios', basename(files[0]).replace(/\.ya?ml$/, ''));
  const r = await runScenario(scenario, { inProcess, outDir });
  console.log(`scenario ${scenario.name} (${inProcess ? 'in-process' : 'REST'}): ${r.steps}/${scenario.steps.length} steps`);
  console.log(`recording ${r.outDir} (${r.recording.length} rows, ${r.traces.length} traces under ${join(r.outDir, 'traces')})`);
  if (r.failure) {
    console.log(`FAILED ${r.failure}`);
    return 1;
  }
  console.log(r.report);
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(err instanceof ScenarioError ? err.message : err);
      process.exit(err instanceof ScenarioError ? 2 : 3);
    },
  );
}
