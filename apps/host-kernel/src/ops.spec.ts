import { HOST_OPERATIONS } from '@app/shared/contract/operations';
import { cpuOps, faultOps, HOST_OPS, hwOps, ioasidOps, kvmOps, processOps, vfioOps } from './ops';

describe('the host command table', () => {
  it('declares every host operation of the journal contract exactly once (kernel.boot is the boot itself, not a call)', () => {
    const rows = [processOps, cpuOps, ioasidOps, faultOps, vfioOps, kvmOps, hwOps].flatMap((t) => Object.values(t)).map((r) => r.name);
    expect(new Set(rows).size).toBe(rows.length);
    expect([...rows].sort()).toEqual(Object.keys(HOST_OPERATIONS).filter((n) => n !== 'kernel.boot').sort());
    expect([...HOST_OPS.keys()].sort()).toEqual([...rows].sort());
  });

  it('journals every state change and instruction, and no read', () => {
    const reads = [...HOST_OPS.values()].filter((r) => !r.journal).map((r) => r.name).sort();
    expect(reads).toEqual(['hw.faults', 'hw.limits', 'hw.page_requests', 'hw.pasids', 'ioasid.info', 'ioasid.list', 'kvm.read_guest', 'mm.read', 'process.get', 'vfio.list_devices']);
  });
});

describe('docs/architecture.md', () => {
  it('names, for every host operation, the file whose table declares its row (kept true when files move)', () => {
    const { readFileSync } = jest.requireActual<typeof import('node:fs')>('node:fs');
    const { join } = jest.requireActual<typeof import('node:path')>('node:path');
    const doc = readFileSync(join(__dirname, '../../../docs/architecture.md'), 'utf8');
    const rows = new Map([...doc.matchAll(/^\| `([a-z_.]+)` \| `([a-z/.-]+\.ops\.ts)` \|/gm)].map((m) => [m[1], m[2]]));
    expect([...rows.keys()].sort()).toEqual([...HOST_OPS.keys()].sort());
    for (const [name, file] of rows) expect(readFileSync(join(__dirname, file), 'utf8')).toContain(`name: '${name}'`);
  });
});
