import { StackPeerKey } from '../auth/stack-peer';
import { AuditPeers, isLoopbackUrl } from './peers';

const key = StackPeerKey.fromAuditToken('audit-token-e2e') as StackPeerKey;
const proof = (url: string): string => key.sign('audit-peer', url);

describe('audit peers', () => {
  it('accepts loopback URLs only', () => {
    expect(isLoopbackUrl('http://127.0.0.1:7200')).toBe(true);
    expect(isLoopbackUrl('http://localhost:7300/')).toBe(true);
    expect(isLoopbackUrl('http://[::1]:7100')).toBe(true);
    expect(isLoopbackUrl('http://10.0.0.5:7200')).toBe(false);
    expect(isLoopbackUrl('http://example.com')).toBe(false);
    expect(isLoopbackUrl('file:///etc/passwd')).toBe(false);
    expect(isLoopbackUrl('not a url')).toBe(false);
  });

  it('counts learned peers so one holder going away does not drop a peer others still announce', () => {
    const peers = new AuditPeers(['http://127.0.0.1:7100'], key);
    const a = peers.learn('http://127.0.0.1:7200/', proof('http://127.0.0.1:7200/'));
    const b = peers.learn('http://127.0.0.1:7200', proof('http://127.0.0.1:7200'));
    expect(peers.learn('http://192.168.1.9:7200', proof('http://192.168.1.9:7200'))).toBeNull();
    expect(peers.list()).toEqual(['http://127.0.0.1:7100', 'http://127.0.0.1:7200']);
    peers.forget(a);
    expect(peers.list()).toContain('http://127.0.0.1:7200');
    peers.forget(b);
    expect(peers.list()).toEqual(['http://127.0.0.1:7100']);
  });

  it('learns a lifeline holder only with the proof that it is an app of this stack (any process may hold a lifeline)', () => {
    const peers = new AuditPeers([], key);
    const other = StackPeerKey.fromAuditToken('another-stack') as StackPeerKey;
    expect(peers.learn('http://127.0.0.1:9999')).toBeNull();
    expect(peers.learn('http://127.0.0.1:9999', 'f'.repeat(32))).toBeNull();
    expect(peers.learn('http://127.0.0.1:9999', other.sign('audit-peer', 'http://127.0.0.1:9999'))).toBeNull();
    // A proof is for the URL it was made for.
    expect(peers.learn('http://127.0.0.1:9999', proof('http://127.0.0.1:7200'))).toBeNull();
    // Without an audit token there is no stack secret: nobody is learned.
    expect(new AuditPeers([], null).learn('http://127.0.0.1:7200', proof('http://127.0.0.1:7200'))).toBeNull();
    expect(peers.list()).toEqual([]);
    expect(peers.learn('http://127.0.0.1:7200', proof('http://127.0.0.1:7200'))).toBe('http://127.0.0.1:7200');
  });
});
