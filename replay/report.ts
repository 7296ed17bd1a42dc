// What `npm run replay` prints: one line when nothing diverged, else the first divergence — where, the two rows
// side by side, the input that led to it, and that input's trace as Mermaid, as recorded and as replayed.
import type { InputRequest } from '@app/shared/replay/input';
import { renderSequence } from '@app/shared/audit/sequence';
import { sideBySide } from './compare';
import type { RecordedRow, Recording } from './recording';
import { toEvent } from './recording';
import type { ReplayResult } from './replayer';

export function describeInput(req: InputRequest | undefined): string {
  if (!req) return '(no request)';
  const where = req.vm !== undefined ? `${req.app} of vm ${req.vm}` : req.app;
  if (req.kind === 'http') return `${req.method} ${req.path} to ${where} as ${req.principal}${req.body && Object.keys(req.body as object).length ? ` ${JSON.stringify(req.body).slice(0, 160)}` : ''}`;
  return `${req.kind} ${where}${req.ms !== undefined ? ` by ${req.ms} ms` : ''}${req.signal ? ` (${req.signal})` : ''}`;
}

/** The Mermaid diagram of one trace's rows. */
export function traceDiagram(rows: RecordedRow[], trace: string, title: string): string {
  const events = rows.filter((r) => r.trace === trace).map(toEvent);
  return events.length ? renderSequence(events, title) : `%% no rows in trace ${trace}\n`;
}

export function summary(result: ReplayResult): string {
  const held = result.violation ? `, an invariant violated (below)` : '';
  return `replayed ${result.inputs} inputs, compared ${result.compared} rows: ${result.divergence ? 'first divergence below' : 'no divergence'}${held}`;
}

/** What the invariant checks found (`--invariants`): after which input, each check and what it saw. */
function renderViolation(rec: Recording, v: NonNullable<ReplayResult['violation']>): string {
  const inputs = rec.rows.filter((r) => r.input).length;
  const where = v.input ? `after input ${v.inputIndex + 1} of ${inputs}: ${v.input.journal}:${v.input.seq} ${v.input.operation} — ${describeInput(v.input.request)}` : 'before the first input';
  return [`invariant violated ${where}`, ...v.violations.map((x) => `  ${x.check} (${x.group}): ${x.message}`)].join('\n');
}

export function renderReport(rec: Recording, result: ReplayResult): string {
  const d = result.divergence;
  if (!d) return result.violation ? `${summary(result)}\n\n${renderViolation(rec, result.violation)}` : summary(result);
  const inputs = rec.rows.filter((r) => r.input).length;
  const lines = [
    summary(result),
    '',
    `first divergence at ${d.journal}:${d.seq} (${d.recorded ? (d.replayed ? `${d.fields.join(', ')} differ` : 'the replay never wrote this row') : 'the replay wrote a row the recording does not have'})`,
    sideBySide(d),
    '',
  ];
  if (d.input) {
    lines.push(`input ${d.inputIndex + 1} of ${inputs}: ${d.input.journal}:${d.input.seq} ${d.input.operation} — ${describeInput(d.input.request)}`, '');
    const replayedRows = [...result.replayed.values()].flat();
    lines.push(`trace ${d.input.trace} as recorded:`, '```mermaid', traceDiagram(rec.rows, d.input.trace, 'recorded').trimEnd(), '```', '');
    lines.push(`trace ${d.input.trace} as replayed:`, '```mermaid', traceDiagram(replayedRows, d.input.trace, 'replayed').trimEnd(), '```');
  } else {
    lines.push('(before the first input: the stack as it started)');
  }
  return lines.join('\n');
}
