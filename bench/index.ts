import { Stack } from '../test/harness/stack';
import { killAll } from '../test/harness/apps';
import { inProcessRows } from './inprocess.bench';
import { replayRows } from './replay.bench';
import { restNoopRows } from './rest.bench';
import { progress } from './progress';
import { floors, guestBindRows, restCycleRows, restEnqcmdRows } from './stack.bench';
import { type BenchRow, printTable } from './table';

async function main(): Promise<void> {
  const rows: BenchRow[] = [];
  // The stages, each measured whole; the bar moves between them.
  const bar = progress('bench', 7);
  // In-process first: no apps running beside it on the shared cores, and its 2^20 ioasids are gone before the stack starts.
  rows.push(...(await inProcessRows()));
  bar.tick();
  rows.push(...(await replayRows()));
  bar.tick();
  const stack = new Stack();
  await stack.startHost({ MEMORY_MIB: '4096' });
  await stack.startVmm({ PASID_QUOTA: '1024' });
  try {
    const noop = await restNoopRows(stack);
    rows.push(...noop.rows);
    bar.tick();
    const { hopUs, insertUs } = await floors();
    bar.tick();
    rows.push(...(await restCycleRows(stack, hopUs, insertUs)));
    bar.tick();
    rows.push(...(await restEnqcmdRows(stack, noop.noopUs)));
    bar.tick();
    rows.push(...(await guestBindRows(stack, hopUs, insertUs)));
    bar.done();
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
