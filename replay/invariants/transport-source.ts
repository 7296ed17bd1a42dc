// The state source of a replay transport: the in-process stack's objects, or the spawned apps over REST.
import { InProcessTransport } from '../in-process-transport';
import { AUDIT, RestTransport } from '../rest-transport';
import type { Transport } from '../transport';
import { InProcessSource, RestSource, type StateSource } from './observe';

export function sourceFor(t: Transport): StateSource {
  if (t instanceof InProcessTransport) return new InProcessSource(() => t.stack);
  if (t instanceof RestTransport) return new RestSource(t, AUDIT);
  throw new Error(`no state source for a ${t.kind} transport`);
}
