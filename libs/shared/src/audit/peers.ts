import type { StackPeerKey } from '../auth/stack-peer';

/** Loopback only: an app learns peers from the lifelines it serves, and never fetches from anywhere else. */
export function isLoopbackUrl(raw: string): boolean {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return false;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return false;
  const host = u.hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host);
}

/**
 * The apps whose journals `/v1/audit/*` federates: the configured ones (AUDIT_PEERS, by default the peer this
 * app calls) plus those learned from the lifelines it serves, so a trace is drawn whole whichever app is asked
 * (a VMM learns its guests, the host kernel its VMMs). A lifeline holder's `x-audit-url` is learned only with an
 * `x-audit-proof` that the holder is an app of this stack (auth/stack-peer.ts): any process may hold a
 * lifeline, and a peer receives the audit token and is trusted as a source of rows.
 */
export class AuditPeers {
  private readonly learned = new Map<string, number>();

  constructor(
    private readonly configured: string[],
    private readonly key: StackPeerKey | null = null,
  ) {}

  /** A lifeline holder announced its audit URL (counted: one VMM holds many lifelines); null when not learned. */
  learn(url: string | undefined, proof?: string | null): string | null {
    if (!url || !this.key || !isLoopbackUrl(url) || !this.key.verify('audit-peer', url, proof)) return null;
    const key = url.replace(/\/$/, '');
    this.learned.set(key, (this.learned.get(key) ?? 0) + 1);
    return key;
  }

  forget(key: string | null): void {
    if (!key) return;
    const n = (this.learned.get(key) ?? 0) - 1;
    if (n > 0) this.learned.set(key, n);
    else this.learned.delete(key);
  }

  list(): string[] {
    return [...new Set([...this.configured, ...this.learned.keys()])];
  }
}
