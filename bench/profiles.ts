// `npm run bench -- --profile <dir>`: every spawned app runs with `--cpu-prof` into <dir> (test/harness/apps.ts
// profileApps), and after the table each app's profile is summed up: how long it ran, how much of it idle, and the
// functions with the most self time (the samples taken while that function itself ran). The .cpuprofile files stay
// in <dir> for Chrome DevTools or speedscope.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileSummary {
  file: string;
  /** The app whose main script the profile ran (`worker` for a worker thread's, which runs none). */
  app: string;
  seconds: number;
  idlePct: number;
  top: Array<{ pct: number; where: string }>;
}

/** V8's pseudo-frames that are not code of the app. */
const NOT_CODE = new Set(['(idle)', '(root)', '(program)']);

export function summarizeProfile(file: string, profile: CpuProfile, topN = 8): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const app = profile.nodes.map((n) => /dist\/apps\/([\w-]+)\/.*\/main\.js$/.exec(n.callFrame.url)?.[1]).find((x) => x !== undefined) ?? 'worker';
  const self = new Map<string, number>();
  let idle = 0;
  for (const id of profile.samples) {
    const f = (byId.get(id) as ProfileNode).callFrame;
    if (f.functionName === '(idle)') idle++;
    if (NOT_CODE.has(f.functionName)) continue;
    const where = `${f.functionName || '(anonymous)'} ${f.url.split('/').slice(-2).join('/')}:${f.lineNumber + 1}`;
    self.set(where, (self.get(where) ?? 0) + 1);
  }
  const total = Math.max(1, profile.samples.length);
  const top = [...self]
    .sort((a, b) => b[1] - a[1])
    .slice(0, topN)
    .map(([where, n]) => ({ pct: (100 * n) / total, where }));
  return { file, app, seconds: (profile.endTime - profile.startTime) / 1e6, idlePct: (100 * idle) / total, top };
}

/** The summaries of every .cpuprofile in `dir`, the apps' own (not their worker threads') first. */
export function summarizeProfiles(dir: string, topN = 8): ProfileSummary[] {
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  const all = files.map((f) => summarizeProfile(f, JSON.parse(readFileSync(join(dir, f), 'utf8')) as CpuProfile, topN));
  return all.sort((a, b) => Number(a.app === 'worker') - Number(b.app === 'worker') || a.app.localeCompare(b.app) || a.file.localeCompare(b.file));
}

export function printProfiles(dir: string, summaries: ProfileSummary[]): void {
  console.log(`CPU profiles of the spawned apps in ${dir} (self time, % of each app's samples):`);
  for (const s of summaries) {
    if (s.app === 'worker') continue;
    console.log(`  ${s.app} (${s.file}): ${s.seconds.toFixed(1)} s, ${s.idlePct.toFixed(1)}% idle`);
    for (const t of s.top) console.log(`    ${t.pct.toFixed(1).padStart(5)}%  ${t.where}`);
  }
  const workers = summaries.filter((s) => s.app === 'worker').length;
  if (workers) console.log(`  (${workers} worker-thread profiles not listed)`);
}
