// Who is one of this stack's own apps. Every app of one stack is started with the same AUDIT_TOKEN (the
// operator's secret: `npm start` and the test harness give it to all three), so an app proves it is one of
// them with a MAC keyed by a key derived from that token: never by sending the token. What the proof covers
// is bound into it (its purpose and its value), so a proof for one header proves nothing about another.
// Used for the Lamport clock an app sends (`x-lamport-proof`) and the audit URL a lifeline holder announces
// (`x-audit-proof`). Without an audit token there is no stack secret, and nobody is a proven peer.
import { createHmac, timingSafeEqual } from 'node:crypto';

export type PeerProofPurpose = 'lamport' | 'audit-peer';

/** Hex digits of a proof: 128 bits of HMAC-SHA256. */
const PROOF_HEX = 32;

export class StackPeerKey {
  private constructor(private readonly key: Buffer) {}

  /** The stack's peer key, or null when no audit token is configured. */
  static fromAuditToken(auditToken: string | null | undefined): StackPeerKey | null {
    if (!auditToken) return null;
    return new StackPeerKey(createHmac('sha256', auditToken).update('ioasid-lab stack peer v1').digest());
  }

  sign(purpose: PeerProofPurpose, value: string): string {
    return createHmac('sha256', this.key).update(`${purpose}\n${value}`).digest('hex').slice(0, PROOF_HEX);
  }

  /** True when `proof` is this stack's proof of `value` for `purpose` (constant time). */
  verify(purpose: PeerProofPurpose, value: string, proof: string | null | undefined): boolean {
    if (typeof proof !== 'string' || proof.length !== PROOF_HEX) return false;
    return timingSafeEqual(Buffer.from(this.sign(purpose, value)), Buffer.from(proof));
  }
}
