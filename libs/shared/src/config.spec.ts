import { ConfigError, envDbPath, envInt, envPort, envToken, envUrl, envUrlList } from './config';

describe('config from the environment', () => {
  it('uses defaults when unset and accepts port 0', () => {
    expect(envPort({}, 'PORT', 7100)).toBe(7100);
    expect(envPort({ PORT: '0' }, 'PORT', 7100)).toBe(0);
  });

  it.each(['abc', '-1', '65536', '1.5', ' '])('refuses PORT=%p with one clear line', (raw) => {
    expect(() => envPort({ PORT: raw }, 'PORT', 7100)).toThrow(ConfigError);
    expect(() => envPort({ PORT: raw }, 'PORT', 7100)).toThrow(/^PORT must be an integer in \[0, 65535\]/);
  });

  it('validates integers in range, URLs and tokens', () => {
    expect(envInt({ N: '12' }, 'N', 1, 1, 64)).toBe(12);
    expect(() => envInt({ N: '65' }, 'N', 1, 1, 64)).toThrow(ConfigError);
    expect(envUrl({ U: 'http://127.0.0.1:7100/' }, 'U')).toBe('http://127.0.0.1:7100');
    expect(() => envUrl({ U: 'ftp://x' }, 'U')).toThrow(/http:\/\/ URL/);
    expect(() => envUrl({}, 'U')).toThrow(/required/);
    expect(envToken({ T: 'abcdefgh' }, 'T')).toEqual({ token: 'abcdefgh', generated: false });
    expect(envToken({}, 'T').generated).toBe(true);
    expect(() => envToken({ T: 'short' }, 'T')).toThrow(ConfigError);
    expect(envUrlList({ P: 'http://a:1, http://b:2' }, 'P', [])).toEqual(['http://a:1', 'http://b:2']);
  });

  it('puts each app database in DATA_DIR unless DB_PATH says otherwise', () => {
    expect(envDbPath({ DATA_DIR: '/tmp/d' }, 'vmm')).toBe('/tmp/d/vmm.db');
    expect(envDbPath({ DB_PATH: ':memory:' }, 'vmm')).toBe(':memory:');
  });
});
