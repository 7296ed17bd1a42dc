#!/usr/bin/env node
// `npm run replay -- …`, `npm run scenario -- …` and `npm run fuzz -- …`: compiles the replay tools (replay/tsconfig.json → dist/tools)
// when a source is newer than the build, builds the three apps when the run spawns them (anything but
// --in-process) and they are stale, then runs the tool with the `@app/shared` alias resolved.
'use strict';
const { execSync, spawnSync } = require('node:child_process');
const { existsSync, statSync, readdirSync } = require('node:fs');
const { join } = require('node:path');

const ROOT = join(__dirname, '..');
const TOOLS = { replay: 'dist/tools/replay/cli.js', scenario: 'dist/tools/replay/scenario/cli.js', fuzz: 'dist/tools/fuzz/cli.js' };
const APPS = ['host-kernel', 'vmm', 'guest'].map((a) => join(ROOT, `dist/apps/${a}/apps/${a}/src/main.js`));

function newest(dir, skip = () => false) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) t = Math.max(t, newest(p, skip));
    else if (e.name.endsWith('.ts') && !skip(e.name)) t = Math.max(t, statSync(p).mtimeMs);
  }
  return t;
}

const spec = (n) => n.endsWith('.spec.ts') || n.endsWith('.e2e-spec.ts');
const stale = (outputs, dirs) => {
  const src = Math.max(...dirs.map((d) => newest(join(ROOT, d), spec)));
  return !outputs.every((o) => existsSync(o) && statSync(o).mtimeMs > src);
};

const [tool, ...args] = process.argv.slice(2);
if (!TOOLS[tool]) {
  console.error(`usage: node scripts/tools.js ${Object.keys(TOOLS).join('|')} [args]`);
  process.exit(2);
}
const entry = join(ROOT, TOOLS[tool]);
const spawns = !args.includes('--in-process') && !args.includes('--export') && !args.includes('--until') && !args.includes('--watch') && !args.includes('--help');
if (spawns && stale(APPS, ['apps', 'libs'])) execSync('npm run build', { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
if (stale([entry], ['apps', 'libs', 'stack', 'replay', 'fuzz', 'test/harness'])) {
  process.stderr.write('compiling the replay tools (tsc -p replay/tsconfig.json)…\n');
  execSync('npx tsc -p replay/tsconfig.json', { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
}
const r = spawnSync(process.execPath, ['-r', join(ROOT, 'replay/register.js'), entry, ...args], { stdio: 'inherit' });
process.exit(r.status ?? 1);
