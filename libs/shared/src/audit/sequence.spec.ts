import type { JournalEvent } from '../journal/journal';
import { HOST_OPERATIONS } from '../contract/operations';
import { callName, causalOrder, renderSequence } from './sequence';

let seq = 0;
function ev(app: string, operation: string, spanId: string, parentSpanId: string | null, wallMs: number, extra: Partial<JournalEvent> = {}): JournalEvent {
  seq += 1;
  return {
    seq,
    app,
    actor: 'a',
    operation,
    object: null,
    args: {},
    result: null,
    errno: null,
    traceId: 't'.repeat(32),
    spanId,
    parentSpanId,
    caller: null,
    logical: seq,
    wallMs,
    durationMs: 1,
    ...extra,
  };
}

describe('sequence diagrams', () => {
  it('orders by causality first: a parent written after its children is still drawn before them', () => {
    // The VMM's row is written when its operation ends, after the host rows it caused.
    const host1 = ev('host-kernel', 'ioasid.alloc', 'h1', 'v1', 110, { caller: 'vmm' });
    const host2 = ev('host-kernel', 'ioasid.bind_pgtbl', 'h2', 'v1', 120, { caller: 'vmm' });
    const vmm = ev('vmm', 'viommu.invalidate', 'v1', 'g1', 100, { caller: 'guest' });
    const guest = ev('guest', 'sva.bind', 'g1', null, 90);
    expect(causalOrder([host2, host1, vmm, guest]).map((e) => e.operation)).toEqual([
      'sva.bind',
      'viommu.invalidate',
      'ioasid.alloc',
      'ioasid.bind_pgtbl',
    ]);
  });

  it('draws request and return arrows between the apps, errnos on failed calls', () => {
    const guest = ev('guest', 'guest.boot', 'g1', null, 1);
    const vmm = ev('vmm', 'vcpu.wrmsr', 'v1', 'g1', 2, { caller: 'guest', args: { value: 0 } });
    const host = ev('host-kernel', 'kvm.vcpu_wrmsr', 'h1', 'v1', 3, { caller: 'vmm', errno: 'EINVAL' });
    const text = renderSequence([host, vmm, guest], 'boot');
    expect(text.split('\n')).toEqual([
      'sequenceDiagram',
      '  title boot',
      '  participant operator',
      '  participant guest',
      '  participant vmm',
      '  participant host-kernel',
      '  operator->>guest: guest.boot',
      `  guest->>vmm: ${callName('vmm', 'vcpu.wrmsr')} value=0x0`,
      `  vmm->>host-kernel: ${callName('host-kernel', 'kvm.vcpu_wrmsr')}`,
      '  host-kernel-->>vmm: -EINVAL',
      '  vmm-->>guest: ok',
      '  guest-->>operator: ok',
      '',
    ]);
  });

  it('draws a row whose caller row is missing from its recorded caller', () => {
    const host = ev('host-kernel', 'process.create', 'h9', 'zz', 5, { caller: 'vmm', result: { pid: 4 } });
    expect(renderSequence([host])).toContain('vmm->>host-kernel: process.create\n  host-kernel-->>vmm: pid=4');
  });

  it('prints addresses in hex and other numbers in decimal', () => {
    const row = ev('host-kernel', 'kvm.write_guest', 'h5', null, 1, { args: { gpa: 0x27000, length: 4096 } });
    expect(renderSequence([row])).toContain('operator->>host-kernel: kvm.write_guest gpa=0x27000 length=4096');
  });

  it('names a host call by its ioctl where the design has one, and other rows by their operation', () => {
    expect(callName('host-kernel', 'kvm.map_pasid')).toBe(HOST_OPERATIONS['kvm.map_pasid'].label);
    expect(callName('host-kernel', 'kvm.map_pasid')).toMatch(/MAP_PASID/);
    expect(callName('host-kernel', 'vfio.disallow_ioasid')).toBe('VFIO_DEVICE_DISALLOW_IOASID');
    expect(callName('host-kernel', 'mm.write')).toBe('mm.write');
    expect(callName('guest', 'sva.bind')).toBe('sva.bind');
    const row = ev('host-kernel', 'kvm.map_pasid', 'h6', null, 1, { args: { vpasid: 3 } });
    expect(renderSequence([row])).toContain('operator->>host-kernel: KVM_MAP_PASID vpasid=3');
  });
});
