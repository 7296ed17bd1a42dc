// A scenario file (DESIGN §9): YAML with an optional `stack` (seed, devices, memory, quota, crash knob) and a
// list of `steps`, each one key naming the step kind, plus `as:` (save its answer under a name, used later as
// `${name.field}`), `expect:` (checks on its answer) and `background: true` (send it, do not wait). Everything
// is checked before anything runs: an unknown step or field fails naming its line.
import { readFileSync } from 'node:fs';
import { isMap, isSeq, LineCounter, parseDocument, type Node } from 'yaml';
import { parseDevices } from '../../apps/host-kernel/src/config';
import { DEFAULT_CONFIG, type StackConfig } from '../recording';

/** Step kinds and the fields each takes (`_` = a scalar value instead of a map). */
export const STEP_FIELDS: Record<string, string[]> = {
  'create-vm': ['name', 'memoryMiB', 'vcpus', 'devices'],
  'delete-vm': ['_', 'vm'],
  'boot-guest': ['_', 'vm', 'pageRequests'],
  process: ['vm', 'name'],
  mmap: ['vm', 'pid', 'length'],
  munmap: ['vm', 'pid', 'gva', 'length'],
  write: ['vm', 'pid', 'gva', 'data', 'pattern', 'length'],
  bind: ['vm', 'pid', 'vrid'],
  unbind: ['vm', 'pid', 'vrid'],
  submit: ['vm', 'pid', 'vrid', 'descriptor', 'vcpu'],
  'pasid-entry': ['vm', 'dir', 'table', 'vpasid', 'present', 'pgtt', 'flpm', 'flptr'],
  call: ['app', 'vm', 'method', 'path', 'body', 'principal'],
  kill: ['_'],
  restart: ['_'],
  advance: ['_'],
  yield: ['_'],
  'wait-for': ['journal', 'operation', 'args', 'errno'],
  expect: ['result', 'errno', 'status', 'bytes', 'pool', 'pasid', 'invariants'],
};

const STEP_KEYS = new Set(['as', 'expect', 'background']);

export interface Step {
  kind: string;
  /** The step's own value (a map, or a scalar for `kill: vmm`). */
  spec: unknown;
  as?: string;
  expect?: Record<string, unknown>;
  background: boolean;
  line: number;
}

export interface Scenario {
  file: string;
  name: string;
  description: string;
  config: StackConfig;
  steps: Step[];
}

export class ScenarioError extends Error {}

export function parseScenario(file: string, text = readFileSync(file, 'utf8')): Scenario {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const lineOf = (n: Node | null | undefined): number => (n?.range ? lines.linePos(n.range[0]).line : 1);
  if (doc.errors.length) throw new ScenarioError(`${file} line ${lines.linePos(doc.errors[0].pos[0]).line}: ${doc.errors[0].message.split('\n')[0]}`);
  const root = doc.contents;
  if (!isMap(root)) throw new ScenarioError(`${file}: a scenario is a map with \`steps\``);
  for (const item of root.items) {
    const key = String((item.key as { value?: unknown })?.value);
    if (!['name', 'description', 'stack', 'steps'].includes(key)) throw new ScenarioError(`${file} line ${lineOf(item.key as Node)}: unknown field "${key}" (name, description, stack, steps)`);
  }
  const plain = doc.toJS() as { name?: string; description?: string; stack?: Partial<StackConfig>; steps?: unknown };
  const stepsNode = root.get('steps', true) as Node | undefined;
  if (!isSeq(stepsNode)) throw new ScenarioError(`${file}: \`steps\` must be a list`);
  const steps = stepsNode.items.map((node, i): Step => {
    const line = lineOf(node as Node);
    const where = `${file} line ${line}`;
    const value = (plain.steps as unknown[])[i];
    if (!isMap(node) || value === null || typeof value !== 'object') throw new ScenarioError(`${where}: a step is a map such as \`- bind: {...}\``);
    const keys = Object.keys(value as object);
    const own = keys.filter((k) => !STEP_KEYS.has(k));
    const kinds = own.length === 0 && keys.includes('expect') ? ['expect'] : own;
    if (kinds.length !== 1) throw new ScenarioError(`${where}: a step names exactly one kind, got ${kinds.join(', ') || 'none'}`);
    const kind = kinds[0];
    const fields = STEP_FIELDS[kind];
    if (!fields) throw new ScenarioError(`${where}: unknown step "${kind}" (known: ${Object.keys(STEP_FIELDS).join(', ')})`);
    const v = value as Record<string, unknown>;
    const spec = v[kind];
    if (spec !== null && typeof spec === 'object' && !Array.isArray(spec)) {
      for (const f of Object.keys(spec)) if (!fields.includes(f)) throw new ScenarioError(`${where}: step "${kind}" has no field "${f}" (it takes ${fields.filter((x) => x !== '_').join(', ')})`);
    } else if (!fields.includes('_')) throw new ScenarioError(`${where}: step "${kind}" takes a map of ${fields.join(', ')}`);
    const expect = kind === 'expect' ? (spec as Record<string, unknown>) : (v.expect as Record<string, unknown> | undefined);
    if (expect !== undefined) {
      if (expect === null || typeof expect !== 'object') throw new ScenarioError(`${where}: expect takes a map`);
      for (const f of Object.keys(expect)) if (!STEP_FIELDS.expect.includes(f)) throw new ScenarioError(`${where}: expect has no check "${f}" (it checks ${STEP_FIELDS.expect.join(', ')})`);
    }
    return { kind, spec, as: v.as as string | undefined, expect, background: v.background === true, line };
  });
  const stack = plain.stack ?? {};
  for (const k of Object.keys(stack)) if (!(k in DEFAULT_CONFIG)) throw new ScenarioError(`${file}: stack has no field "${k}" (it takes ${Object.keys(DEFAULT_CONFIG).join(', ')})`);
  let config: StackConfig = { ...DEFAULT_CONFIG, ...stack };
  try {
    if (stack.devices !== undefined) config = { ...config, devices: parseDevices(stack.devices, `${file} stack.devices`) };
  } catch (err) {
    throw new ScenarioError(`${file}: ${(err as Error).message}`);
  }
  return { file, name: plain.name ?? file, description: plain.description ?? '', config, steps };
}
