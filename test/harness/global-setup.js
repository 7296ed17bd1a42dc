// Builds the three apps once before the multi-process tests (skipped when dist is newer than every source).
const { execSync } = require('node:child_process');
const { existsSync, statSync, readdirSync } = require('node:fs');
const { join } = require('node:path');

const ROOT = join(__dirname, '..', '..');
const ENTRIES = ['host-kernel', 'vmm', 'guest'].map((a) => join(ROOT, `dist/apps/${a}/apps/${a}/src/main.js`));

function newestSource(dir) {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.spec.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

module.exports = async () => {
  const src = Math.max(newestSource(join(ROOT, 'apps')), newestSource(join(ROOT, 'libs')));
  const fresh = ENTRIES.every((e) => existsSync(e) && statSync(e).mtimeMs > src);
  if (!fresh) execSync('npm run build', { cwd: ROOT, stdio: 'inherit' });
};
