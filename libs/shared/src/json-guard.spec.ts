import { errnoOf } from './errno.testing';
import { checkJsonDepth, checkKeys, MAX_BODY_DEPTH, RESERVED_KEYS } from './json-guard';

const nested = (depth: number, open = '[', close = ']'): string => open.repeat(depth) + close.repeat(depth);

describe('request bodies are checked before anything descends into them', () => {
  it('refuses nesting deeper than MAX_BODY_DEPTH with EINVAL, objects and arrays alike, and accepts the limit itself', () => {
    expect(errnoOf(() => checkJsonDepth(Buffer.from(nested(MAX_BODY_DEPTH))))).toBeUndefined();
    expect(errnoOf(() => checkJsonDepth(Buffer.from(nested(MAX_BODY_DEPTH + 1))))).toBe('EINVAL');
    const objects = '{"a":'.repeat(MAX_BODY_DEPTH + 1) + '1' + '}'.repeat(MAX_BODY_DEPTH + 1);
    expect(errnoOf(() => checkJsonDepth(Buffer.from(objects)))).toBe('EINVAL');
    // 3,000 deep (18 KB) gave a 500 from class-transformer; a million deep blocked the event loop.
    expect(errnoOf(() => checkJsonDepth(Buffer.from(nested(3000))))).toBe('EINVAL');
    expect(errnoOf(() => checkJsonDepth(Buffer.from(nested(1_000_000))))).toBe('EINVAL');
  });

  it('counts only structure: brackets inside strings (escaped quotes included) do not nest', () => {
    const deepText = JSON.stringify({ data: '['.repeat(10_000) + '\\"{{{' + '{'.repeat(10_000) });
    expect(errnoOf(() => checkJsonDepth(Buffer.from(deepText)))).toBeUndefined();
    const escapedQuote = `{"a":"\\\\"}${'['.repeat(MAX_BODY_DEPTH + 1)}`;
    expect(errnoOf(() => checkJsonDepth(Buffer.from(escapedQuote)))).toBe('EINVAL');
    // Closing brackets let the depth fall again: many shallow siblings are fine.
    expect(errnoOf(() => checkJsonDepth(Buffer.from(`[${'[[1]],'.repeat(50_000)}0]`)))).toBeUndefined();
  });

  it('refuses the keys JavaScript treats specially, at any depth, as unknown fields', () => {
    for (const key of RESERVED_KEYS) {
      const top = JSON.parse(`{"comm":"x",${JSON.stringify(key)}:{"polluted":1}}`) as unknown;
      expect([key, errnoOf(() => checkKeys(top))]).toEqual([key, 'EINVAL']);
      const deep = JSON.parse(`{"descriptors":[{"type":"wait",${JSON.stringify(key)}:1}]}`) as unknown;
      expect([key, errnoOf(() => checkKeys(deep))]).toEqual([key, 'EINVAL']);
    }
    // Decoded keys count, not their spelling on the wire.
    expect(errnoOf(() => checkKeys(JSON.parse('{"\\u005f_proto__":1}')))).toBe('EINVAL');
    expect(errnoOf(() => checkKeys({ comm: 'x', nested: [{ ok: true }], note: 'constructor' }))).toBeUndefined();
    expect(({} as { polluted?: number }).polluted).toBeUndefined();
  });
});
