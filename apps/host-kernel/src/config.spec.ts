import { ConfigError } from '@app/shared/config';
import { loadConfig } from './config';
import { DEFAULT_LIMITS, LIMITS } from './limits/limits';

describe('the host kernel configuration', () => {
  it('every resource limit has its default, and its knob sets it (MiB knobs in MiB)', () => {
    expect(loadConfig({}).limits).toEqual(DEFAULT_LIMITS);
    const limits = loadConfig({ PASID_LIMIT: '16', PIN_LIMIT_MIB: '2', MEM_LIMIT_MIB: '3', FD_LIMIT: '8', FILE_MAX: '100', PROCESS_LIMIT: '0' }).limits;
    expect(limits).toEqual({ pasids: 16, pinnedBytes: 2 << 20, residentBytes: 3 << 20, fds: 8, files: 100, processes: 0 });
    expect(Object.keys(LIMITS).sort()).toEqual(Object.keys(limits).sort());
  });

  it('a bad limit stops the app with one clear line', () => {
    expect(() => loadConfig({ PASID_LIMIT: 'lots' })).toThrow(ConfigError);
    expect(() => loadConfig({ FD_LIMIT: '-1' })).toThrow('FD_LIMIT must be an integer in [0, ');
  });
});
