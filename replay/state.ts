// Time travel's picture of the stack at one point (DESIGN §9): the host object graph (kernel-state.ts: processes
// and fds, ioasids with state, refs and holders, routes, KVM vPASID tables and vCPU IA32_PASIDs, the PASID pool,
// queued device work) and the VMM's shadow tables (each VM's vPASID → pPASID bindings), and what changed
// between two such pictures, and one value of it followed through a replay (`--watch`).
import { isDeepStrictEqual } from 'node:util';
import { kernelState, type KernelState } from '../apps/host-kernel/src/kernel-state';
import type { ShadowBinding } from '../apps/vmm/src/viommu/viommu.types';
import type { InProcessStack } from '../stack/in-process-stack';

export interface StackState {
  host: KernelState;
  vmm: { vms: Array<{ id: number; name: string; state: string; guestAttached: boolean; shadow: ShadowBinding[] }> };
}

export function stackState(stack: InProcessStack): StackState {
  return { host: kernelState(stack.host.kernel), vmm: vmmTables(stack) };
}

/** The VMM's VMs and each one's shadow table (none while the VMM is down). */
function vmmTables(stack: InProcessStack): StackState['vmm'] {
  const vms = stack.down.has('vmm')
    ? []
    : stack.vmm.vms.list({ kind: 'admin' }).map((v) => {
        let shadow: ShadowBinding[] = [];
        try {
          shadow = stack.vmm.vms.running(v.id).viommu.bindings();
        } catch {
          /* stopped or starting: no vIOMMU */
        }
        return { id: v.id, name: v.name, state: v.state, guestAttached: v.guestAttached, shadow };
      });
  return { vms };
}

export interface Change {
  path: string;
  before?: unknown;
  after?: unknown;
}

/** Every leaf (or whole array element keyed by position) that differs between `a` and `b`, by JSON path. */
export function diffStates(a: unknown, b: unknown, path = '$'): Change[] {
  if (isDeepStrictEqual(a, b)) return [];
  const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object';
  if (!isObj(a) || !isObj(b) || Array.isArray(a) !== Array.isArray(b)) return [{ path, before: a, after: b }];
  const keys = Array.isArray(a) ? [...Array(Math.max(a.length, (b as unknown as unknown[]).length)).keys()].map(String) : [...new Set([...Object.keys(a), ...Object.keys(b)])];
  const out: Change[] = [];
  for (const k of keys) {
    const sub = Array.isArray(a) ? `${path}[${k}]` : `${path}.${k}`;
    if (!(k in a)) out.push({ path: sub, after: b[k] });
    else if (!(k in b)) out.push({ path: sub, before: a[k] });
    else out.push(...diffStates(a[k], b[k], sub));
  }
  return out;
}

/** One step of a watch path: a key, an array index, or the first array element whose `key` is `value`. */
type PathStep = { key: string } | { index: number } | { where: string; is: string };

/** A path into a StackState, as `--watch` takes it: `host.pool.parked`, `host.ioasids[id=5].state`, `vmm.vms[0]`. */
export interface StatePath {
  readonly text: string;
  /** The part of the state it starts in (only that part is read after each commit). */
  readonly root: keyof StackState;
  readonly steps: readonly PathStep[];
}

export class StatePathError extends Error {}

const STEP = /^(?:\.([A-Za-z_$][\w$]*)|\[(\d+)\]|\[([A-Za-z_$][\w$]*)=([^\]]*)\])/;

/** Parses a watch path (a leading `$.` is allowed, as diffStates writes them); StatePathError names what is wrong. */
export function parseStatePath(text: string): StatePath {
  let rest = text.startsWith('$.') ? text.slice(1) : `.${text}`;
  const steps: PathStep[] = [];
  while (rest.length) {
    const m = STEP.exec(rest);
    if (!m) throw new StatePathError(`watch path "${text}": cannot read "${rest}" (steps are .key, [n] or [key=value])`);
    if (m[1] !== undefined) steps.push({ key: m[1] });
    else if (m[2] !== undefined) steps.push({ index: Number(m[2]) });
    else steps.push({ where: m[3], is: m[4] });
    rest = rest.slice(m[0].length);
  }
  const first = steps[0];
  if (!first || !('key' in first) || (first.key !== 'host' && first.key !== 'vmm')) throw new StatePathError(`watch path "${text}" must start with host or vmm`);
  return { text, root: first.key, steps: steps.slice(1) };
}

/** The value at `path` in `part` (the state's `path.root`), or undefined where it leads nowhere. */
export function valueAt(part: unknown, path: StatePath): unknown {
  let at = part;
  for (const step of path.steps) {
    if (at === null || typeof at !== 'object') return undefined;
    if ('key' in step) at = Object.prototype.hasOwnProperty.call(at, step.key) ? (at as Record<string, unknown>)[step.key] : undefined;
    else if (!Array.isArray(at)) return undefined;
    else if ('index' in step) at = at[step.index];
    else at = at.find((e: unknown) => e !== null && typeof e === 'object' && String((e as Record<string, unknown>)[step.where]) === step.is);
  }
  return at;
}

/** The part of the stack's state a path starts in, built alone (the host's object graph or the VMM's tables). */
export function statePart(stack: InProcessStack, root: keyof StackState): unknown {
  return root === 'host' ? kernelState(stack.host.kernel) : vmmTables(stack);
}
