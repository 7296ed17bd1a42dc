// What a campaign leaves: the summary (operations, rate, checks, violations, 5xx, leaks, coverage against the
// contract) and, at a violation, a directory with the minimized scenario (scenario.yaml: `npm run scenario` fails
// on it with the same check) and the recording of that minimized run (recording/: `npm run replay` re-runs it with
// the invariant checks on and shows the failure again; violation.json says which checks it expects).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { CONTRACT, type Coverage } from './coverage';
import type { FuzzOutcome } from './fuzzer';
import { KNOWN_DEFECTS } from './known';
import { minimize, type MinimizeOptions, trial } from './minimize';
import type { FuzzOp } from './op';
import type { StepOutcome } from './run';

export const VIOLATION_FILE = 'violation.json';

export interface Artifacts {
  dir: string;
  scenario: string;
  recording: string | null;
  /** Operations in the scenario, and how many the campaign had run. */
  kept: number;
  of: number;
  trials: number;
  /** False: the budget ran out (shorter, maybe not minimal), or the run did not violate again on a fresh stack. */
  minimal: boolean;
  reproduced: boolean;
}

/** The scenario file of a list of operations as they ran: steps that skipped are left out, refusals expected. */
export function scenarioYaml(o: { name: string; description: string; config: MinimizeOptions['config']; ops: FuzzOp[]; outcomes: StepOutcome[][]; checks: Set<string> }): string {
  const steps: Array<Record<string, unknown>> = [];
  o.ops.forEach((op, i) => {
    op.steps.forEach((s, j) => {
      const out = o.outcomes[i]?.[j];
      if (!out || !('status' in out)) return;
      const expect = !s.background && out.status >= 300 ? { status: out.status } : undefined;
      steps.push({ [s.kind]: s.spec, ...(s.as ? { as: s.as } : {}), ...(s.background ? { background: true } : {}), ...(expect ? { expect } : {}) });
    });
  });
  const last = steps.at(-1);
  if (last) last.expect = { ...((last.expect as object | undefined) ?? {}), invariants: [...o.checks] };
  return stringify({ name: o.name, description: o.description, stack: o.config, steps }, { lineWidth: 0 });
}

/** Minimizes the failing run, records the minimized run, and writes the scenario; the campaign's stack is closed. */
export async function writeArtifacts(r: FuzzOutcome, opts: { outDir: string; inProcess: boolean; budgetMs: number }): Promise<Artifacts> {
  await r.run.close();
  const checks = new Set(r.violations.map((v) => v.check));
  const mo: MinimizeOptions = { config: r.config, inProcess: opts.inProcess, name: r.name, budgetMs: opts.budgetMs };
  mkdirSync(opts.outDir, { recursive: true });
  const min = await minimize(r.ops, checks, mo);
  const recording = join(opts.outDir, 'recording');
  const final = min ? await trial(min.ops, mo, checks, recording) : null;
  const ops = final?.ops ?? r.ops;
  const found = final?.violations ?? r.violations;
  const first = found[0];
  // What the minimized run violates (some of the campaign's checks, perhaps not all): what the scenario expects.
  const seen = new Set(found.map((v) => v.check));
  const description = `fuzz --seed ${r.config.seed} (${opts.inProcess ? 'in-process' : 'REST'}): ${r.ops.length} operations${final ? `, minimized to ${ops.length}` : ' (did not violate again on a fresh stack: not minimized)'}. The last step violates ${[...seen].join(', ')}: ${first.message}`;
  const scenario = join(opts.outDir, 'scenario.yaml');
  writeFileSync(scenario, scenarioYaml({ name: r.name, description, config: r.config, ops, outcomes: final?.outcomes ?? r.run.outcomes, checks: seen }));
  if (final) writeFileSync(join(recording, VIOLATION_FILE), `${JSON.stringify({ checks: [...seen], violations: final.violations, seed: r.config.seed, operations: ops.map((o) => o.name) }, null, 2)}\n`);
  return { dir: opts.outDir, scenario, recording: final ? recording : null, kept: ops.length, of: r.ops.length, trials: (min?.trials ?? 0) + 1, minimal: !!min?.complete, reproduced: !!final };
}

const pct = (a: number, b: number): string => `${a}/${b}`;

/** The campaign's figures and coverage, as the command prints them. */
export function summaryText(r: FuzzOutcome, opts: { inProcess: boolean; tenants: number }): string {
  const secs = r.elapsedMs / 1000;
  const m = r.run.session.monitor;
  const known = [...r.run.known].map(([id, n]) => `${n} (${id}: ${KNOWN_DEFECTS.find((d) => d.id === id)?.what ?? ''})`);
  const lines = [
    `fuzz --seed ${r.config.seed} ${opts.inProcess ? 'in-process' : 'multi-process (REST)'}, ${opts.tenants} tenants`,
    `  operations        ${r.ops.length} (${r.run.steps} steps) in ${secs.toFixed(1)} s = ${(r.ops.length / Math.max(secs, 0.001)).toFixed(1)} ops/s`,
    `  invariant checks  ${m?.checksRun ?? 0} (${Math.round((m?.checksRun ?? 0) / Math.max(m?.observations ?? 0, 1))} checks × ${m?.observations ?? 0} observations${opts.inProcess ? '' : `; ${m?.checks.filter((c) => c.inProcessOnly).length ?? 0} need the in-process objects`})`,
    `  violations        ${r.violations.length}${r.violations.length ? ` (${[...new Set(r.violations.map((v) => v.check))].join(', ')})` : ''}`,
    `  known defects     ${known.length ? known.join('; ') : 0}`,
    `  5xx               ${r.run.fiveXX} (507/501 with their errnos are the contract's, not counted)`,
    `  leaks             ${r.violations.length ? 'not checked (stopped at the violation)' : r.leaks}`,
  ];
  return [...lines, ...coverageLines(r.coverage)].join('\n');
}

/** The coverage table: each app's operations of the contract reached, with success, and the errnos seen. */
export function coverageLines(coverage: Coverage): string[] {
  const lines = ['coverage (operations of the contract reached, with success; errnos seen):'];
  for (const app of Object.keys(CONTRACT) as Array<keyof typeof CONTRACT>) {
    const c = coverage.reached(app);
    const missing = CONTRACT[app].filter((o) => !c.any.includes(o));
    lines.push(`  ${app.padEnd(12)} ${pct(c.any.length, CONTRACT[app].length)} reached, ${c.ok.length} with success; errnos ${[...c.errnos].sort().join(' ') || 'none'}`);
    if (missing.length) lines.push(`  ${''.padEnd(12)} not reached: ${missing.join(' ')}`);
  }
  const rep = [...coverage.repertoire];
  const refused = rep.filter(([, o]) => [...o.keys()].some((k) => k !== 'ok')).length;
  lines.push(`  fuzzer ops   ${rep.length} kinds run, ${refused} of them refused at least once`);
  return lines;
}
