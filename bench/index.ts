import { Stack } from '../test/harness/stack';
import { killAll } from '../test/harness/apps';
import { inProcessRows } from './inprocess.bench';
import { replayRows } from './replay.bench';
import { restNoopRows } from './rest.bench';
import { floors, guestBindRows, restCycleRows, restEnqcmdRows } from './stack.bench';
import { type BenchRow, printTable } from './table';

async function main(): Promise<void> {
  const rows: BenchRow[] = [];
  // In-process first: no apps running beside it on the shared cores, and its 2^20 ioasids are gone before the stack starts.
  process.stderr.write('bench: in-process kernel…\n');
  rows.push(...(await inProcessRows()));
  process.stderr.write('bench: replay (in-process, then over REST)…\n');
  rows.push(...(await replayRows()));
  const stack = new Stack();
  await stack.startHost({ MEMORY_MIB: '4096' });
  await stack.startVmm({ PASID_QUOTA: '1024' });
  try {
    process.stderr.write('bench: REST…\n');
    const noop = await restNoopRows(stack);
    rows.push(...noop.rows);
    const { hopUs, insertUs } = await floors();
    rows.push(...(await restCycleRows(stack, hopUs, insertUs)));
    rows.push(...(await restEnqcmdRows(stack, noop.noopUs)));
    process.stderr.write('bench: guest bind/unbind…\n');
    rows.push(...(await guestBindRows(stack, hopUs, insertUs)));
  } finally {
    await stack.stop();
  }
  printTable(rows);
}

main().catch(async (err: unknown) => {
  console.error(err);
  await killAll();
  process.exit(1);
});
