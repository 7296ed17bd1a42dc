// Every invariant check, by group (one module each), and how to run them on one observation.
import { CALL_CHECKS } from './calls';
import { ISOLATION_CHECKS } from './isolation';
import { JOURNAL_CHECKS } from './journals';
import { LEAK_CHECKS } from './leaks';
import { PAGE_REQUEST_CHECKS } from './page-requests';
import { PASID_POOL_CHECKS } from './pasid-pool';
import { REFCOUNT_CHECKS } from './refcounts';
import type { Check, CheckInput, Violation } from './types';
import { VMM_CHECKS } from './vmm';

export const CHECKS: readonly Check[] = [
  ...PASID_POOL_CHECKS,
  ...REFCOUNT_CHECKS,
  ...LEAK_CHECKS,
  ...ISOLATION_CHECKS,
  ...PAGE_REQUEST_CHECKS,
  ...VMM_CHECKS,
  ...CALL_CHECKS,
  ...JOURNAL_CHECKS,
];

export function checkNamed(name: string): Check {
  const c = CHECKS.find((x) => x.name === name);
  if (!c) throw new Error(`no invariant check "${name}" (known: ${CHECKS.map((x) => x.name).join(', ')})`);
  return c;
}

/** Runs `checks` on one observation; a check that throws is a violation of its own (it met a state it cannot read). */
export function runChecks(checks: readonly Check[], input: CheckInput): Violation[] {
  const out: Violation[] = [];
  for (const c of checks) {
    if (c.inProcessOnly && !input.stack) continue;
    let messages: string[];
    try {
      messages = c.run(input);
    } catch (err) {
      messages = [`the check failed: ${(err as Error).stack ?? String(err)}`];
    }
    for (const message of messages) out.push({ check: c.name, group: c.group, message });
  }
  return out;
}
