import { fuzz } from './fuzzer';
async function main(): Promise<void> {
  const seed = Number(process.argv[2] ?? 1);
  const n = Number(process.argv[3] ?? 200);
  const t0 = Date.now();
  const r = await fuzz({ seed, ops: n, inProcess: !process.argv.includes('--rest'), tenants: 4, onOp: (d) => d % 100 === 0 && process.stderr.write(`${d} ops ${((Date.now() - t0) / 1000).toFixed(1)}s\n`) });
  console.log(`ops ${r.ops.length} steps ${r.run.steps} ${(r.elapsedMs / 1000).toFixed(1)}s checks ${r.run.session.monitor?.checksRun} 5xx ${r.run.fiveXX} leaks ${r.leaks}`);
  for (const v of r.violations.slice(0, 5)) console.log(`VIOLATION ${v.check}: ${v.message}`);
  if (r.violations.length) console.log(`at op ${r.ops.length - 1}: ${r.ops.at(-1)?.name} ${JSON.stringify(r.ops.at(-1)?.steps).slice(0, 600)}`);
  const rep = [...r.coverage.repertoire].map(([k, v]) => `${k}:${[...v].map(([o, c]) => `${o}=${c}`).join(',')}`);
  console.log(rep.join('\n'));
  if (r.violations.length) await r.run.close();
}
void main();
