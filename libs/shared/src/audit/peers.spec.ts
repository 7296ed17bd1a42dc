import { AuditPeers, isLoopbackUrl } from './peers';

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
    const peers = new AuditPeers(['http://127.0.0.1:7100']);
    const a = peers.learn('http://127.0.0.1:7200/');
    const b = peers.learn('http://127.0.0.1:7200');
    expect(peers.learn('http://192.168.1.9:7200')).toBeNull();
    expect(peers.list()).toEqual(['http://127.0.0.1:7100', 'http://127.0.0.1:7200']);
    peers.forget(a);
    expect(peers.list()).toContain('http://127.0.0.1:7200');
    peers.forget(b);
    expect(peers.list()).toEqual(['http://127.0.0.1:7100']);
  });
});
