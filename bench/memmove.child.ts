// One fresh process's memmove rows (memmove.processes.ts forks it): argv[2] is { copy4k, descriptors } as JSON,
// and the rows go back to the parent over the IPC channel.
import { memmoveRows } from './memmove.bench';

const { copy4k, descriptors } = JSON.parse(process.argv[2] ?? '{}') as { copy4k: number; descriptors: number };
if (!(copy4k > 0) || !(descriptors > 0) || !process.send) throw new Error(`memmove.child: needs { copy4k, descriptors } and an IPC channel, got ${process.argv[2]}`);
const rows = memmoveRows(copy4k, descriptors);
process.send(rows, () => process.exit(0));
