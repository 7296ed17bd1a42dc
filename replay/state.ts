// Time travel's picture of the stack at one point (DESIGN §9): the host object graph (kernel-state.ts: processes
// and fds, ioasids with state, refs and holders, routes, KVM vPASID tables and vCPU IA32_PASIDs, the PASID pool,
// queued device work) and the VMM's shadow tables (each VM's vPASID → pPASID bindings), and what changed
// between two such pictures.
import { isDeepStrictEqual } from 'node:util';
import { kernelState, type KernelState } from '../apps/host-kernel/src/kernel-state';
import type { ShadowBinding } from '../apps/vmm/src/viommu/viommu.types';
import type { InProcessStack } from '../stack/in-process-stack';

export interface StackState {
  host: KernelState;
  vmm: { vms: Array<{ id: number; name: string; state: string; guestAttached: boolean; shadow: ShadowBinding[] }> };
}

export function stackState(stack: InProcessStack): StackState {
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
  return { host: kernelState(stack.host.kernel), vmm: { vms } };
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
