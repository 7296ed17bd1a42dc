// The in-process source's journal reads (replay/journal-reader.ts, which the in-process transport uses too): every
// new row of every journal once, and no read of a journal nothing was written to since it was last read (a campaign
// keeps the journal of every VM it ever ran).
import * as pages from '@app/shared/journal/journal-pages';
import { InProcessStack } from '../../stack/in-process-stack';
import { InProcessSource } from './observe';

describe('InProcessSource.newRows', () => {
  let stack: InProcessStack;
  beforeAll(async () => {
    stack = await InProcessStack.create({ memoryMiB: 64 });
  });
  afterAll(() => stack.close());

  it('gives each journal its new rows once, and reads only the journals written since its last look', async () => {
    const source = new InProcessSource(() => stack);
    const reads = jest.spyOn(pages, 'allJournalEvents');
    try {
      const first = await source.newRows();
      // The first look reads every journal from the start: the host's boot is there.
      expect(first.get('host-kernel')?.map((r) => r.operation)).toContain('kernel.boot');
      expect([...first.keys()].sort()).toEqual(['host-kernel', 'vmm']);
      const readsAtFirst = reads.mock.calls.length;
      expect(readsAtFirst).toBe(2);

      // Nothing written since: every journal is listed, empty, and none is read.
      const quiet = await source.newRows();
      expect([...quiet.entries()]).toEqual([['host-kernel', []], ['vmm', []]]);
      expect(reads.mock.calls.length).toBe(readsAtFirst);

      // A host call: only the host's journal is read, and it gives exactly that call's rows.
      const res = await stack.request({ app: 'host-kernel', method: 'POST', path: '/v1/processes', body: { comm: 'observed' } });
      expect(res.status).toBe(201);
      const after = await source.newRows();
      expect(after.get('host-kernel')?.map((r) => [r.operation, r.args])).toEqual([['process.create', { comm: 'observed' }]]);
      expect(after.get('vmm')).toEqual([]);
      expect(reads.mock.calls.length).toBe(readsAtFirst + 1);
      expect(reads.mock.calls.at(-1)?.[0]).toBe(stack.host.journal);
      expect((await source.newRows()).get('host-kernel')).toEqual([]);
    } finally {
      reads.mockRestore();
    }
  });
});
