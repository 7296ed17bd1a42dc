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
 * The apps whose journals `/v1/audit/*` federates: the configured ones (AUDIT_PEERS, by default the
 * peer this app calls) plus those learned from the lifelines it serves (a VMM learns its guests, the host
 * kernel its VMMs, from the `x-audit-url` they send), so a trace is drawn whole whichever app is asked.
 */
export class AuditPeers {
  private readonly learned = new Map<string, number>();

  constructor(private readonly configured: string[]) {}

  /** A lifeline holder announced its audit URL (counted: one VMM holds many lifelines). */
  learn(url: string | undefined): string | null {
    if (!url || !isLoopbackUrl(url)) return null;
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
