import { operationLabel } from '../contract/operations';
import type { JournalEvent } from '../journal/journal';

/** The apps in the order they stand in a diagram: the caller on the left, the kernel on the right. */
const PARTICIPANTS = ['operator', 'guest', 'vmm', 'host-kernel', 'hw'] as const;

export interface SequenceNode {
  event: JournalEvent;
  children: SequenceNode[];
}

function byTime(a: SequenceNode, b: SequenceNode): number {
  return a.event.wallMs - b.event.wallMs || a.event.logical - b.event.logical || a.event.seq - b.event.seq;
}

/**
 * Orders events of one trace from several apps by causality (a row whose parent span is another
 * row's span is drawn inside it), then by time among siblings.
 */
export function causalTree(events: JournalEvent[]): SequenceNode[] {
  const nodes = new Map<string, SequenceNode>();
  for (const event of events) nodes.set(`${event.app}:${event.spanId}`, { event, children: [] });
  const bySpan = new Map<string, SequenceNode>();
  for (const node of nodes.values()) bySpan.set(node.event.spanId, node);
  const roots: SequenceNode[] = [];
  for (const node of nodes.values()) {
    const parent = node.event.parentSpanId ? bySpan.get(node.event.parentSpanId) : undefined;
    if (parent && parent !== node) parent.children.push(node);
    else roots.push(node);
  }
  const sort = (list: SequenceNode[]): void => {
    list.sort(byTime);
    for (const n of list) sort(n.children);
  };
  sort(roots);
  return roots;
}

/** Flattens the causal tree into the order the calls started (a parent before its children). */
export function causalOrder(events: JournalEvent[]): JournalEvent[] {
  const out: JournalEvent[] = [];
  const walk = (list: SequenceNode[]): void => {
    for (const n of list) {
      out.push(n.event);
      walk(n.children);
    }
  };
  walk(causalTree(events));
  return out;
}

function label(text: string): string {
  // Mermaid message text may not contain ';' or '#' unescaped, nor newlines.
  return text.replace(/[;#\n\r]/g, ' ').slice(0, 120);
}

/** Fields that hold addresses (and MSR values, fill patterns) read better in hex, as in a kernel log. */
const ADDRESS_KEYS = new Set(['gpa', 'hva', 'iova', 'gva', 'root', 'address', 'src', 'dst', 'completion', 'completionAddress', 'pasidDirGpa', 'flptr', 'value', 'pattern']);

function show(key: string, v: unknown): string {
  return ADDRESS_KEYS.has(key) && typeof v === 'number' ? `0x${v.toString(16)}` : String(v);
}

function summarize(value: unknown): string {
  if (value === null || value === undefined) return 'ok';
  if (typeof value !== 'object') return String(value);
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => typeof v !== 'object' || v === null)
    .slice(0, 4)
    .map(([k, v]) => `${k}=${show(k, v)}`);
  return entries.length ? entries.join(' ') : 'ok';
}

/**
 * How a diagram names a call: the ioctl or instruction of the design where the journal contract has one
 * (IOASID_ALLOC, VFIO_DEVICE_ALLOW_IOASID, KVM_MAP_PASID, ENQCMD…), else the operation as journaled.
 */
export function callName(app: string, operation: string): string {
  const label = operationLabel(app, operation);
  return /^[A-Z][A-Z0-9_]*(\b|$)/.test(label) ? label : operation;
}

/**
 * A Mermaid `sequenceDiagram` of the events: a request arrow, the calls it caused, its return arrow. Calls are
 * named as the design names them (callName); `labels: false` names every call by its journal operation.
 */
export function renderSequence(events: JournalEvent[], title?: string, opts: { labels?: boolean } = {}): string {
  const roots = causalTree(events);
  const used = new Set<string>();
  const lines: string[] = [];
  const draw = (node: SequenceNode, from: string): void => {
    const e = node.event;
    used.add(from).add(e.app);
    const args = summarize(e.args);
    const name = opts.labels === false ? e.operation : callName(e.app, e.operation);
    lines.push(`  ${from}->>${e.app}: ${label(`${name}${args === 'ok' ? '' : ` ${args}`}`)}`);
    for (const child of node.children) draw(child, e.app);
    const back = e.errno ? `-${e.errno}` : summarize(e.result);
    lines.push(`  ${e.app}-->>${from}: ${label(back)}`);
  };
  for (const root of roots) draw(root, root.event.caller ?? 'operator');
  const order = [...PARTICIPANTS.filter((p) => used.has(p)), ...[...used].filter((p) => !(PARTICIPANTS as readonly string[]).includes(p))];
  const head = ['sequenceDiagram'];
  if (title) head.push(`  title ${label(title)}`);
  for (const p of order) head.push(`  participant ${p}`);
  return [...head, ...lines].join('\n') + '\n';
}
