import { SeededStream, seededTokens } from './seeded';

describe('seeded streams (deterministic mode)', () => {
  it('give the same values for the same seed and name, different ones otherwise', () => {
    const a = new SeededStream(7, 'host-kernel/token');
    const b = new SeededStream(7, 'host-kernel/token');
    const first = [a.hex(16), a.hex(16), a.hex(40)];
    expect([b.hex(16), b.hex(16), b.hex(40)]).toEqual(first);
    expect(first[0]).not.toEqual(first[1]);
    expect(first[2]).toHaveLength(80);
    expect(new SeededStream(8, 'host-kernel/token').hex(16)).not.toEqual(first[0]);
    expect(new SeededStream(7, 'vmm/token').hex(16)).not.toEqual(first[0]);
  });

  it('leave the caller its random default when there is no seed', () => {
    expect(seededTokens(null, 'x')).toBeUndefined();
    const t = seededTokens(1, 'x', 24, 'base64url') as () => string;
    expect(t()).toMatch(/^[A-Za-z0-9_-]{32}$/);
  });
});
