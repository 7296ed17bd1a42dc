import { KernelError } from '@app/shared/errno';
import { describeMachine, encodeRid, formatRid } from './machine';

describe('machine description', () => {
  it('assigns vrids bus 0, device n+1, fn 0 in list order', () => {
    const m = describeMachine({ memoryMiB: 64, vcpus: 2, devices: ['0000:6a:01.0', '0000:6b:01.0'] });
    expect(m.devices).toEqual([
      { vrid: 0x0008, bdf: '0000:6a:01.0' },
      { vrid: 0x0010, bdf: '0000:6b:01.0' },
    ]);
    expect(formatRid(0x0010)).toBe('00:02.0');
    expect(encodeRid(1, 2, 3)).toBe(0x0113);
  });

  it.each([
    [{ memoryMiB: 0, vcpus: 1, devices: [] }],
    [{ memoryMiB: 1.5, vcpus: 1, devices: [] }],
    [{ memoryMiB: 8, vcpus: 0, devices: [] }],
    [{ memoryMiB: 8, vcpus: 1, devices: ['6a:01.0'] }],
    [{ memoryMiB: 8, vcpus: 1, devices: ['0000:6a:01.0', '0000:6a:01.0'] }],
    [{ memoryMiB: 8, vcpus: 1, devices: Array.from({ length: 32 }, (_, i) => `0000:${(i + 16).toString(16)}:01.0`) }],
  ])('refuses a bad spec with EINVAL (%#)', (spec) => {
    expect(() => describeMachine(spec)).toThrow(KernelError);
    try {
      describeMachine(spec);
    } catch (e) {
      expect((e as KernelError).errno).toBe('EINVAL');
    }
  });
});
