// Federation of `/v1/audit/*` (DESIGN §6: the sequence diagram of any trace across all three apps): this app's
// rows merged with its peers', each peer asked with the audit token and a deadline. Peers are only those the
// operator configured or that proved they are apps of this stack (audit/peers.ts): a tenant never gets the
// token, and is never a source of rows.
import type { JournalEvent } from '../journal/journal';
import { RestClient } from '../http/rest-client';
import { mergeEvents } from './merge';

/** How long one peer may take to answer (AUDIT_PEER_TIMEOUT_MS); a peer of a peer gets half of it. */
export const AUDIT_PEER_TIMEOUT_MS = 2000;

export type AuditQuery = Record<string, string | number | boolean | undefined>;

export interface FederationOptions {
  /** The asking app's name (`x-caller`). */
  app: string;
  /** The audit token, sent to the peers only. */
  token: string | null;
  /** This peer's deadline; the peers it asks in turn get half, so their answers come back before ours is due. */
  timeoutMs: number;
}

export interface FederatedEvents {
  events: JournalEvent[];
  /** Peers that did not answer in time (or at all): their part of the picture is missing. */
  missing: string[];
}

/** Asks every peer for the rows matching `query` (one hop less), merges what came back in time with `local`. */
export async function federate(local: JournalEvent[], peers: string[], query: AuditQuery, depth: number, opts: FederationOptions): Promise<FederatedEvents> {
  if (depth <= 0 || peers.length === 0) return { events: local, missing: [] };
  const missing: string[] = [];
  const remote = await Promise.all(
    peers.map((url) =>
      new RestClient({ baseUrl: url, app: opts.app, timeoutMs: opts.timeoutMs, token: opts.token ?? undefined })
        .get<JournalEvent[]>('/v1/audit/events', { ...query, federate: true, depth: depth - 1, timeoutMs: Math.max(1, Math.floor(opts.timeoutMs / 2)) })
        .then((rows) => (Array.isArray(rows) ? rows : []))
        // A peer that is down or late leaves its part of the picture out, not the whole answer.
        .catch(() => {
          missing.push(url);
          return [] as JournalEvent[];
        }),
    ),
  );
  return { events: mergeEvents([local, ...remote]), missing };
}
