// The steps of the swept sequence, learnt from one clean run of the real code (not a hand-kept list): every call
// the VMM makes through its HostKernelPort, and every call the guest makes through its VmmPort, as their stall knobs
// print them (DEBUG_CALL_TRACE=1: `CALL {"port","method","nth","traceId","nthInTrace","async"}` on stdout), grouped
// by the phase whose trace they ran in. A step is "the n-th call of this method in this phase": exactly what a
// stall point `<trace>/<method>#<n>` names in a later run of the same sequence.
import { HostKernelClient } from '../../../libs/shared/src/http/host-kernel.client';
import { VmmClient } from '../../../libs/shared/src/http/vmm.client';
import type { PortCall } from '../../../libs/shared/src/debug/stall-knob';
import type { AppProcess } from '../apps';
import { PHASES, type Phase, type Traces } from './flow';

export interface Step {
  /** Whose call it is: the VMM's to the host kernel, or the guest's to the VMM. */
  port: 'host' | 'vmm';
  phase: Phase;
  method: string;
  /** The n-th call of `method` in the phase. */
  nth: number;
  /** Its place among the phase's calls through the same port (1-based). */
  index: number;
}

export const label = (s: Step): string => `${s.port === 'host' ? 'vmm→host' : 'guest→vmm'} ${s.phase} #${s.index} ${s.method}${s.nth > 1 ? `#${s.nth}` : ''}`;

/** The stall point of `step` in a run whose phases run in `traces`. */
export const stallPoint = (s: Step, traces: Traces): string => `${traces[s.phase]}/${s.method}#${s.nth}`;

/** The CALL lines an app printed (its stall knob with DEBUG_CALL_TRACE=1). */
export function callsOf(app: AppProcess): PortCall[] {
  return app.stdout.filter((l) => l.startsWith('CALL ')).map((l) => JSON.parse(l.slice(5)) as PortCall);
}

/** The methods of a port, from the REST adapter that implements it (every port method is one of its methods). */
const portMethods = (port: 'host' | 'vmm'): Set<string> =>
  new Set(Object.getOwnPropertyNames((port === 'host' ? HostKernelClient : VmmClient).prototype).filter((m) => m !== 'constructor'));

/**
 * The steps of each phase, in call order: the calls that answer a promise (a held lifeline is not a step) in the
 * phase's trace. Throws on a call that is no method of the port (the knob must wrap the port and nothing else).
 */
export function stepsOf(calls: PortCall[], traces: Traces): { steps: Step[]; elsewhere: PortCall[] } {
  const phaseOf = new Map<string, Phase>(PHASES.map((p) => [traces[p], p]));
  const steps: Step[] = [];
  const elsewhere: PortCall[] = [];
  const index = new Map<string, number>();
  for (const c of calls) {
    if (!portMethods(c.port as 'host' | 'vmm').has(c.method)) throw new Error(`CALL of ${c.method}: not a method of the ${c.port} port`);
    const phase = c.traceId ? phaseOf.get(c.traceId) : undefined;
    if (!phase) {
      elsewhere.push(c);
      continue;
    }
    if (!c.async) continue;
    const i = (index.get(`${c.port}/${phase}`) ?? 0) + 1;
    index.set(`${c.port}/${phase}`, i);
    steps.push({ port: c.port as 'host' | 'vmm', phase, method: c.method, nth: c.nthInTrace, index: i });
  }
  return { steps, elsewhere };
}

/** The calls of one phase's trace, method names in order (to check that a cut run followed the clean one). */
export function phaseCalls(calls: PortCall[], traceId: string): string[] {
  return calls.filter((c) => c.traceId === traceId && c.async).map((c) => c.method);
}

/** A read or write of guest RAM (the vIOMMU walking the guest's tables, the guest writing its own): it holds nothing. */
const RAM_ACCESS = /^(read|write)(Guest)?Memory$/;

/**
 * The bounded sweep of `npm test`: in each phase, the first call of each method that is not a RAM access (a method
 * called again in the same phase is the same kind of cut; a cut before a RAM access is one before the call that
 * follows it, as far as the host's objects go). The full sweep (SWEEP=full) takes every call.
 */
export function bounded(steps: Step[]): Step[] {
  const seen = new Set<string>();
  return steps.filter((s) => {
    const key = `${s.port}/${s.phase}/${s.method}`;
    if (seen.has(key) || RAM_ACCESS.test(s.method)) return false;
    seen.add(key);
    return true;
  });
}
