import { HostKernelClient } from '../libs/shared/src/http/host-kernel.client';
import { RestClient } from '../libs/shared/src/http/rest-client';
import { AUDIT, type Stack } from '../test/harness/stack';
import { BenchClient } from './client';
import { type BenchRow, type Floors, time } from './table';

/**
 * rest.noop: one journaled no-op call from the VMM's transport to the host kernel (WRMSR IA32_PASID=0 by a host
 * process: validated, applied, journaled in SQLite), p50, beside hop + insert.
 */
export async function restNoopRows(stack: Stack, floors: Floors, n = 2000): Promise<{ rows: BenchRow[]; noopP50Us: number }> {
  const p = await stack.hostClient().createProcess('bench');
  const k = new HostKernelClient(new RestClient({ baseUrl: stack.host.url, app: 'vmm', token: p.token }));
  const call = await time(n, () => k.wrmsr(p.pid, 0));
  // Every call was journaled: the host's audit plane has a cpu.wrmsr row of this process per call (warm-up included).
  const audit = new BenchClient(stack.host.url);
  const rows = await audit.call<unknown[]>('GET', `/v1/audit/events?operation=cpu.wrmsr&actor=pid:${p.pid}&limit=10000`, { token: AUDIT });
  await audit.close();
  if (rows.length !== 2 * n) throw new Error(`rest.noop: ${rows.length} cpu.wrmsr rows journaled for ${2 * n} calls (${n} of them warm-up)`);
  return {
    noopP50Us: call.p50Us,
    rows: [
      {
        id: 'rest.noop',
        name: 'journaled no-op VMM→host (REST)',
        value: call.p50Us,
        unit: 'µs p50/op',
        floor: 'hop + insert',
        floorValue: floors.hop + floors.insert,
        note: `mean ${call.perOpUs.toFixed(0)} µs, p99 ${call.p99Us.toFixed(0)} µs; ${rows.length} rows journaled`,
      },
    ],
  };
}
