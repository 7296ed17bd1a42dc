import { StackPeerKey } from './stack-peer';

describe('proving one is an app of this stack', () => {
  it('a proof made with the audit token verifies; another token, another value or another purpose does not', () => {
    const key = StackPeerKey.fromAuditToken('audit-token-e2e');
    const other = StackPeerKey.fromAuditToken('audit-token-other');
    expect(key).not.toBeNull();
    const proof = key!.sign('lamport', '1234');
    expect(key!.verify('lamport', '1234', proof)).toBe(true);
    expect(key!.verify('lamport', '1235', proof)).toBe(false);
    expect(key!.verify('audit-peer', '1234', proof)).toBe(false);
    expect(other!.verify('lamport', '1234', proof)).toBe(false);
    for (const junk of [undefined, null, '', 'zz', proof.slice(1), `${proof}00`]) expect(key!.verify('lamport', '1234', junk)).toBe(false);
    // The proof never carries the token.
    expect(proof).not.toContain('audit-token-e2e');
    expect(StackPeerKey.fromAuditToken(null)).toBeNull();
  });
});
