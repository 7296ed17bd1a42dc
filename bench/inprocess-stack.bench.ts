// inproc.stack.bind-unbind: the whole stack in one process (guest OS + VMM + host kernel from the real code,
// journals on, in-memory SQLite), one guest SVA bind + unbind per cycle, beside one committed insert.
import { allRows, InProcessStack } from '../stack/in-process-stack';
import type { BenchRow, Floors } from './table';

const DSA0 = '0000:6a:01.0';

export async function inProcessStackRows(floors: Floors, n = 2000): Promise<BenchRow[]> {
  const stack = await InProcessStack.create({ seed: 1 });
  try {
    const vm = await stack.createVm({ name: 'bench', memoryMiB: 64, devices: [DSA0] });
    const guest = await stack.bootGuest(vm);
    const vrid = guest.status().machine?.devices[0].vrid as number;
    const { pid } = await stack.console(vm.id, (g) => g.createProcess('bench'));
    const cycle = async (): Promise<void> => {
      const { vpasid } = await stack.console(vm.id, (g) => g.bind(pid, vrid));
      if (!Number.isInteger(vpasid) || vpasid < 1) throw new Error(`bind answered vpasid ${vpasid}`);
      await stack.console(vm.id, (g) => g.unbind(pid, vrid));
    };
    // As many untimed cycles as timed ones, as every REST row (bench/table.ts time()): the row times the compiled path.
    for (let i = 0; i < n; i++) await cycle();
    const count = async (): Promise<number> => {
      const j = await stack.journals();
      return j.host.length + j.vmm.length + [...j.guests.values()].reduce((s, rows) => s + rows.length, 0);
    };
    const rows0 = await count();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) await cycle();
    const us = Number(process.hrtime.bigint() - t0) / 1000 / n;
    const perCycle = ((await count()) - rows0) / n;
    const pool = (await allRows(stack.host.journal)).filter((r) => r.operation === 'ioasid.alloc').length;
    const freed = (await allRows(stack.host.journal)).filter((r) => r.operation === 'event.ioasid-freed').length;
    // Every bind's ioasid was freed again (the VM's own GPA ioasid stays).
    if (pool - freed !== 1) throw new Error(`inproc.stack.bind-unbind: ${pool} ioasids allocated, ${freed} freed`);
    return [
      {
        id: 'inproc.stack.bind-unbind',
        name: 'guest bind+unbind, whole in-process stack, journals on (:memory:)',
        value: us,
        unit: 'µs/cycle',
        floor: 'insert',
        floorValue: floors.insert,
        note: `${n} cycles, ${(1e6 / us).toFixed(0)} cycles/s; ${perCycle.toFixed(1)} journal rows per cycle`,
      },
    ];
  } finally {
    await stack.close();
  }
}
