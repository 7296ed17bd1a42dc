import { LamportClock } from '@app/shared/clock';
import { createDataSource, WriteLock } from '@app/shared/db';
import { Journal, type ChildRow } from '@app/shared/journal/journal';
import { JOURNAL_PAGE_ROWS } from '@app/shared/journal/journal-pages';
import { readPasidAccess } from './pasid-access';

const PASID = 2;
const DEVICE = '0000:6a:01.0';
/** Rows one bind/unbind epoch of the PASID writes (ALLOC … freed). */
const EPOCH_ROWS = 8;
/** Enough epochs that the PASID's own rows exceed what one Journal.events page returns. */
const EPOCHS = Math.ceil((JOURNAL_PAGE_ROWS * 1.25) / EPOCH_ROWS);

/** One epoch of a busy PASID as the host journals it: the VMM binds vPASID `vpasid` and unbinds it again. */
function epoch(vpasid: number): ChildRow[] {
  const vmm = 'pid:7';
  const object = `ioasid:${PASID}`;
  return [
    { actor: vmm, operation: 'ioasid.alloc', object, args: { fd: 4 }, result: { ioasid: PASID } },
    { actor: vmm, operation: 'ioasid.bind_pgtbl', object, args: { fd: 4, kind: 'nested', parent: 1 } },
    { actor: vmm, operation: 'vfio.allow_ioasid', object, args: { deviceFd: 5, ioasidFd: 4, ioasid: PASID, mode: 'pasid' } },
    { actor: vmm, operation: 'kvm.map_pasid', object, args: { vmFd: 3, vpasid, ioasidFd: 4, ioasid: PASID } },
    // Another PASID's row in between: the pages are keyed on seq, not on a dense row count.
    { actor: vmm, operation: 'ioasid.alloc', object: `ioasid:${PASID + 1}`, args: { fd: 4 }, errno: 'ENOSPC' },
    { actor: vmm, operation: 'kvm.unmap_pasid', object, args: { vmFd: 3, vpasid } },
    { actor: vmm, operation: 'vfio.disallow_ioasid', object, args: { deviceFd: 5, ioasidFd: 4, ioasid: PASID } },
    { actor: vmm, operation: 'ioasid.destroy', object, args: { fd: 4 } },
    { actor: 'kernel', operation: 'event.ioasid-freed', object, args: { ppasid: PASID } },
  ];
}

describe('the PASID access audit reads the whole journal', () => {
  it(`keeps the newest epoch of a PASID with more than ${JOURNAL_PAGE_ROWS} journal rows, complete`, async () => {
    const ds = createDataSource({ path: ':memory:' });
    await ds.initialize();
    try {
      const journal = new Journal(ds, 'host-kernel', new LamportClock(), new WriteLock());
      await journal.record({ actor: 'pid:7', operation: 'vfio.open', object: `device:${DEVICE}`, args: { bdf: DEVICE }, result: { fd: 5 } });
      for (let e = 1; e <= EPOCHS; e++) for (const row of epoch(e)) await journal.record(row);

      const own: Array<{ seq: number; operation: string }> = await ds.query(`SELECT seq, operation FROM journal WHERE object = 'ioasid:${PASID}' ORDER BY seq`);
      expect(own).toHaveLength(EPOCHS * EPOCH_ROWS);
      expect(own.length).toBeGreaterThan(JOURNAL_PAGE_ROWS);
      // One page of Journal.events stops short of the newest epoch: that is what a single query lost.
      const onePage = await journal.events({ object: `ioasid:${PASID}`, limit: own.length });
      expect(onePage.length).toBeLessThan(own.length);
      const newest = own.slice(-EPOCH_ROWS);
      expect(onePage.at(-1)!.seq).toBeLessThan(newest[0].seq);

      const epochs = await readPasidAccess(journal, PASID);
      expect(epochs).toHaveLength(EPOCHS);
      const seqOf = (operation: string): number => newest.find((r) => r.operation === operation)!.seq;
      const last = epochs.at(-1)!;
      expect(last).toMatchObject({ pasid: PASID, owner: 'pid:7', pgtbl: 'nested', allocatedSeq: seqOf('ioasid.alloc'), destroyedAt: expect.any(String), freedAt: expect.any(String) });
      expect(last.access).toEqual([
        expect.objectContaining({ holder: `device ${DEVICE} (pasid)`, fromSeq: seqOf('vfio.allow_ioasid'), toSeq: seqOf('vfio.disallow_ioasid'), endedBy: 'vfio.disallow_ioasid' }),
        expect.objectContaining({ holder: `kvm vm fd 3: vPASID ${EPOCHS}`, fromSeq: seqOf('kvm.map_pasid'), toSeq: seqOf('kvm.unmap_pasid'), endedBy: 'kvm.unmap_pasid' }),
      ]);
      // Every epoch, not just the ends: epoch n carried vPASID n.
      expect(epochs.map((x) => x.access[1]?.holder)).toEqual(Array.from({ length: EPOCHS }, (_, i) => `kvm vm fd 3: vPASID ${i + 1}`));
    } finally {
      await ds.destroy();
    }
  });
});
