import { EntitySchema } from 'typeorm';

/** One journal row: an operation an app performed (or refused), in the order it committed. */
export interface JournalRow {
  seq: number;
  app: string;
  actor: string;
  operation: string;
  object: string | null;
  args: string;
  result: string | null;
  errno: string | null;
  traceId: string;
  spanId: string;
  parentSpanId: string | null;
  caller: string | null;
  logical: number;
  wallMs: number;
  durationMs: number;
  /** The app instance that wrote the row (INSTANCE; several may share a database); null on rows older than the column. */
  instance?: string | null;
  /** 1 when the row entered the stack from outside (DESIGN §9), else 0. */
  input: number;
  /** For an input: the request as JSON (an InputRequest); null otherwise. */
  request: string | null;
}

export const JournalEntity = new EntitySchema<JournalRow>({
  name: 'JournalRow',
  tableName: 'journal',
  columns: {
    seq: { type: 'integer', primary: true, generated: 'increment' },
    app: { type: 'text' },
    actor: { type: 'text' },
    operation: { type: 'text' },
    object: { type: 'text', nullable: true },
    args: { type: 'text' },
    result: { type: 'text', nullable: true },
    errno: { type: 'text', nullable: true },
    traceId: { type: 'text', name: 'trace_id' },
    spanId: { type: 'text', name: 'span_id' },
    parentSpanId: { type: 'text', name: 'parent_span_id', nullable: true },
    caller: { type: 'text', nullable: true },
    logical: { type: 'integer' },
    wallMs: { type: 'integer', name: 'wall_ms' },
    durationMs: { type: 'real', name: 'duration_ms' },
    instance: { type: 'text', nullable: true },
    input: { type: 'integer', default: 0 },
    request: { type: 'text', nullable: true },
  },
});
