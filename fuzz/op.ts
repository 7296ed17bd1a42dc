// A fuzzer operation: one or more scenario steps (replay/scenario: the fuzzer runs them through the scenario
// runner's own executeStep, so the scenario it writes runs exactly as it ran), the tenant that issued it, and how
// its answers update that tenant's bookkeeping. Objects an operation creates are saved under a fresh name
// (`as: v12`) and later steps name them `${v12.fd}`: a minimized scenario keeps working when earlier,
// unrelated operations are cut, because ids are looked up, not copied.
import type { DeviceConfig } from '../apps/host-kernel/src/kernel';
import type { Step } from '../replay/scenario/parse';
import type { StackResponse } from '../stack/door/door';
import type { Snapshot } from '../replay/invariants/types';
import type { Prng } from './prng';

export interface FuzzOp {
  /** What it is (`host/alloc`, `rogue/pasid-entry/bad-flptr`): the fuzzer's own coverage of its repertoire. */
  name: string;
  /** `t0`… or `world` (external events, the admin, races across tenants). */
  tenant: string;
  steps: Step[];
  /** Told the answers, one per step (null: none came, or the step did not run). */
  learn?: (answers: Array<StackResponse | null>) => void;
}

/** What a tenant decides with: the seed's choices, the stack as last observed, the answers saved so far. */
export interface GenContext {
  rng: Prng;
  snap: Snapshot;
  vars: Map<string, unknown>;
  /** A fresh name for an answer (`v<op>_<n>`). */
  fresh(): string;
  devices: DeviceConfig[];
  /** All tenants, so a hostile one can use another's objects. */
  tenants: Tenant[];
  /** VMs are made with this much RAM. */
  vmMemoryMiB: number;
}

export interface Tenant {
  readonly id: string;
  readonly kind: 'host' | 'guest' | 'rogue';
  /** The next operation this tenant wants to do, or null (nothing to do now). */
  propose(g: GenContext): FuzzOp | null;
  /** The VMM died (every VM lost its host side and its guest): forget what lived there. */
  vmmLost(): void;
  /** Host objects (var names and their fields) another tenant may try to use: `${v3.fd}`. */
  exposed(): string[];
}

export function step(kind: string, spec: unknown, opts: { as?: string; background?: boolean } = {}): Step {
  return { kind, spec, ...(opts.as ? { as: opts.as } : {}), background: opts.background === true, line: 0 };
}

export interface CallSpec {
  app: 'host-kernel' | 'vmm' | 'guest';
  vm?: number | string;
  method: string;
  path: string;
  body?: unknown;
  principal: string;
}

export const call = (c: CallSpec, opts: { as?: string; background?: boolean } = {}): Step =>
  step('call', { app: c.app, ...(c.vm !== undefined ? { vm: c.vm } : {}), method: c.method, path: c.path, body: c.body ?? null, principal: c.principal }, opts);

/** A saved answer's field, as a step value (`${v3.fd}`): the value itself when it is the whole string. */
export const ref = (v: string, field: string): string => `\${${v}.${field}}`;

export const ok = (a: StackResponse | null | undefined): boolean => !!a && a.status >= 200 && a.status < 300;

export const op = (name: string, tenant: string, steps: Step[], learn?: FuzzOp['learn']): FuzzOp => ({ name, tenant, steps, ...(learn ? { learn } : {}) });
