import { sameToken } from './bearer';

describe('sameToken', () => {
  it('compares tokens in constant time, whatever their lengths', () => {
    expect(sameToken('audit-token-e2e', 'audit-token-e2e')).toBe(true);
    expect(sameToken('audit-token-e2e', 'audit-token-e2f')).toBe(false);
    expect(sameToken('audit-token-e2e', 'audit')).toBe(false);
    expect(sameToken('', '')).toBe(true);
  });
});
