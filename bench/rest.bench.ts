import { HostKernelClient } from '../libs/shared/src/http/host-kernel.client';
import { RestClient } from '../libs/shared/src/http/rest-client';
import { fetchHopFloor, httpHopFloor, sqliteInsertFloor } from './floors';
import type { BenchRow } from './table';
import { time } from './table';
import { Stack } from '../test/harness/stack';

/**
 * Issue 2: one journaled no-op call from the VMM to the host kernel (WRMSR IA32_PASID=0 by a host
 * process: validated, applied, journaled in SQLite), beside a bare node:http round trip plus a raw
 * better-sqlite3 insert.
 */
export async function restNoopRows(stack: Stack, n = 2000): Promise<{ rows: BenchRow[]; noopUs: number }> {
  const p = await stack.hostClient().createProcess('bench');
  const k = new HostKernelClient(new RestClient({ baseUrl: stack.host.url, app: 'vmm', token: p.token }));
  const call = await time(n, () => k.wrmsr(p.pid, 0));
  const hop = await httpHopFloor(n);
  const insert = await sqliteInsertFloor(n);
  const viaFetch = await fetchHopFloor(n);
  const floor = hop.perOpUs + insert.perOpUs;
  return {
    noopUs: call.perOpUs,
    rows: [
      {
        name: 'journaled no-op VMM→host (REST)',
        value: call.perOpUs,
        unit: 'µs/op',
        floorName: 'node:http hop + sqlite insert',
        floor,
        note: `p50 ${call.p50Us.toFixed(0)} µs, p99 ${call.p99Us.toFixed(0)} µs; hop ${hop.perOpUs.toFixed(0)} + insert ${insert.perOpUs.toFixed(1)} µs; the same bare hop through fetch() alone: ${viaFetch.perOpUs.toFixed(0)} µs`,
      },
    ],
  };
}
