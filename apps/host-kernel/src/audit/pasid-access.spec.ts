import type { JournalEvent } from '@app/shared/journal/journal';
import { pasidAccess } from './pasid-access';

/** A host journal in the making: each row gets the next seq and a later wall time. */
function journal() {
  let seq = 0;
  const rows: JournalEvent[] = [];
  const add = (operation: string, args: Record<string, unknown> = {}, extra: Partial<JournalEvent> = {}): JournalEvent => {
    seq += 1;
    const r: JournalEvent = {
      seq,
      app: 'host-kernel',
      actor: 'pid:100',
      operation,
      object: 'ioasid:2',
      args,
      result: null,
      errno: null,
      traceId: 't'.repeat(32),
      spanId: `s${seq}`,
      parentSpanId: null,
      caller: 'vmm',
      logical: seq,
      wallMs: 1_700_000_000_000 + seq * 1000,
      durationMs: 0,
      ...extra,
    };
    rows.push(r);
    return r;
  };
  return { rows, add };
}
const at = (r: JournalEvent): string => new Date(r.wallMs).toISOString();
const devices = (_actor: string, fd: number): string | null => (fd === 5 ? '0000:6a:01.0' : null);

describe('who had access to a host PASID, from when to when', () => {
  it('folds a bind/unbind into one epoch: the device route and the KVM entry, each closed by its own call', () => {
    const j = journal();
    const alloc = j.add('ioasid.alloc', { fd: 4 });
    j.add('ioasid.bind_pgtbl', { fd: 4, kind: 'nested', parent: 1 });
    const allow = j.add('vfio.allow_ioasid', { deviceFd: 5, ioasidFd: 4, ioasid: 2, mode: 'pasid' });
    const map = j.add('kvm.map_pasid', { vmFd: 3, vpasid: 1, ioasidFd: 4, ioasid: 2 });
    j.add('vfio.allow_ioasid', { deviceFd: 5, ioasidFd: 4, ioasid: 2, mode: 'pasid' }, { errno: 'EBUSY' }); // refused: no access
    const unmap = j.add('kvm.unmap_pasid', { vmFd: 3, vpasid: 1 });
    const disallow = j.add('vfio.disallow_ioasid', { deviceFd: 5, ioasidFd: 4, ioasid: 2 });
    const destroy = j.add('ioasid.destroy', { fd: 4 });
    const freed = j.add('event.ioasid-freed', { ppasid: 2 });
    const epochs = pasidAccess(2, [...j.rows].reverse(), devices); // input order does not matter: seq does
    expect(epochs).toHaveLength(1);
    expect(epochs[0]).toMatchObject({ pasid: 2, owner: 'pid:100', pgtbl: 'nested', allocatedAt: at(alloc), destroyedAt: at(destroy), freedAt: at(freed) });
    expect(epochs[0].access).toEqual([
      { holder: 'device 0000:6a:01.0 (pasid)', kind: 'device', by: 'pid:100', from: at(allow), to: at(disallow), fromSeq: allow.seq, toSeq: disallow.seq, endedBy: 'vfio.disallow_ioasid' },
      { holder: 'kvm vm fd 3: vPASID 1', kind: 'kvm', by: 'pid:100', from: at(map), to: at(unmap), fromSeq: map.seq, toSeq: unmap.seq, endedBy: 'kvm.unmap_pasid' },
    ]);
  });

  it('DESTROY ends every access at once though holders keep their references; a recycled PASID starts a new epoch', () => {
    const j = journal();
    j.add('ioasid.alloc');
    j.add('vfio.allow_ioasid', { deviceFd: 5, mode: 'pasid' });
    j.add('kvm.map_pasid', { vmFd: 3, vpasid: 9 });
    const destroy = j.add('ioasid.destroy');
    j.add('kvm.unmap_pasid', { vmFd: 3, vpasid: 9 });
    j.add('vfio.disallow_ioasid', { deviceFd: 5 });
    const freed = j.add('event.ioasid-freed');
    j.add('ioasid.alloc', {}, { actor: 'pid:101' });
    const epochs = pasidAccess(2, j.rows, devices);
    expect(epochs.map((e) => e.owner)).toEqual(['pid:100', 'pid:101']);
    expect(epochs[0].access.map((a) => [a.kind, a.to, a.endedBy])).toEqual([
      ['device', at(destroy), 'destroy'],
      ['kvm', at(destroy), 'destroy'],
    ]);
    expect(epochs[0].freedAt).toBe(at(freed));
    expect(epochs[1]).toMatchObject({ freedAt: null, destroyedAt: null, access: [] });
  });

  it('close(fd) of the device fd or the VM fd ends what that fd held, and only that process’s', () => {
    const j = journal();
    j.add('ioasid.alloc');
    j.add('vfio.allow_ioasid', { deviceFd: 5, mode: 'pasid' });
    j.add('vfio.allow_ioasid', { deviceFd: 6, mode: 'rid' });
    j.add('kvm.map_pasid', { vmFd: 3, vpasid: 1 });
    j.add('fd.close', { fd: 5 }, { object: 'fd:101/5', actor: 'pid:101' }); // another process's fd 5
    const closeDev = j.add('fd.close', { fd: 5 }, { object: 'fd:100/5' });
    const closeVm = j.add('fd.close', { fd: 3 }, { object: 'fd:100/3' });
    const [epoch] = pasidAccess(2, j.rows, devices);
    expect(epoch.access.map((a) => [a.holder, a.to, a.endedBy])).toEqual([
      ['device 0000:6a:01.0 (pasid)', at(closeDev), 'fd.close'],
      ['device fd 6 (rid)', null, null],
      ['kvm vm fd 3: vPASID 1', at(closeVm), 'fd.close'],
    ]);
  });

  it('reports nothing from a history whose ALLOC it never saw', () => {
    const j = journal();
    j.add('vfio.allow_ioasid', { deviceFd: 5, mode: 'pasid' });
    j.add('event.ioasid-freed');
    expect(pasidAccess(2, j.rows, devices)).toEqual([]);
  });
});
