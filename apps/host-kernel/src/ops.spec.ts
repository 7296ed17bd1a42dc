import { HOST_OPERATIONS } from '@app/shared/contract/operations';
import { cpuOps, HOST_OPS, hwOps, ioasidOps, kvmOps, processOps, vfioOps } from './ops';

describe('the host command table', () => {
  it('declares every host operation of the journal contract exactly once (kernel.boot is the boot itself, not a call)', () => {
    const rows = [processOps, cpuOps, ioasidOps, vfioOps, kvmOps, hwOps].flatMap((t) => Object.values(t)).map((r) => r.name);
    expect(new Set(rows).size).toBe(rows.length);
    expect([...rows].sort()).toEqual(Object.keys(HOST_OPERATIONS).filter((n) => n !== 'kernel.boot').sort());
    expect([...HOST_OPS.keys()].sort()).toEqual([...rows].sort());
  });

  it('journals every state change and instruction, and no read', () => {
    const reads = [...HOST_OPS.values()].filter((r) => !r.journal).map((r) => r.name).sort();
    expect(reads).toEqual(['hw.faults', 'hw.pasids', 'ioasid.info', 'ioasid.list', 'kvm.read_guest', 'mm.read', 'process.get', 'vfio.list_devices']);
  });
});
