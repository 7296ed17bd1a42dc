import type { DataSource } from 'typeorm';
import { createDataSource } from '@app/shared/db';
import { KernelError } from '@app/shared/errno';
import { Journal } from '@app/shared/journal/journal';
import { hostSva } from '../data-plane.testing';
import { DSA0, newKernel, PAGE, type TestKernel } from '../kernel.testing';
import { DEFAULT_LIMITS } from '../limits/limits';
import { ioasidOps, processOps } from '../ops';
import { PROCESS_MIGRATIONS, ProcessEntity } from '../persistence/process.entity';
import { Dispatcher } from './dispatcher';

describe('the dispatcher: a call and its journal row are one commit', () => {
  let ds: DataSource;
  let journal: Journal;
  let k: TestKernel;
  beforeEach(async () => {
    ds = createDataSource({ path: ':memory:', entities: [ProcessEntity], migrations: PROCESS_MIGRATIONS });
    await ds.initialize();
    journal = new Journal(ds, 'host-kernel');
    k = newKernel({ journal, engine: { paused: true } });
  });
  afterEach(() => ds.destroy());

  /** The store fails its next write (a full disk, a lost database): everything after works again. */
  function failNextWrite(): void {
    const write = journal.store.write.bind(journal.store);
    journal.store.write = () => {
      journal.store.write = write;
      throw new Error('disk I/O error');
    };
  }

  it('writes the row of a call with its result and its events as child rows under its span', async () => {
    const { pid } = k.createProcess('p');
    const fd = k.openIoasid(pid);
    const id = k.alloc(pid, fd);
    k.destroy(pid, fd, id);
    const rows = await journal.events({});
    const destroy = rows.find((r) => r.operation === 'ioasid.destroy');
    expect(destroy).toMatchObject({ actor: `pid:${pid}`, object: `ioasid:${id}`, args: { fd, ioasid: id }, errno: null });
    const children = rows.filter((r) => r.parentSpanId === destroy?.spanId).map((r) => r.operation);
    expect(children).toEqual(['event.ioasid-destroyed', 'event.ioasid-freed']);
    expect(rows.find((r) => r.operation === 'ioasid.alloc')).toMatchObject({ object: `ioasid:${id}`, result: { ioasid: id } });
  });

  it('a refused call is journaled with its errno and changes nothing', async () => {
    const { pid } = k.createProcess('p');
    const fd = k.openIoasid(pid);
    const before = k.snapshot();
    expect(() => k.destroy(pid, fd, 77)).toThrow(expect.objectContaining({ errno: 'ENOENT' }));
    expect(k.snapshot()).toEqual(before);
    expect((await journal.events({ operation: 'ioasid.destroy' })).map((r) => [r.errno, r.object])).toEqual([['ENOENT', 'ioasid:77']]);
  });

  it('when the row cannot be written the change is undone and the caller gets EIO: no PASID is consumed', async () => {
    const { pid } = k.createProcess('p');
    const fd = k.openIoasid(pid);
    const before = k.snapshot();
    failNextWrite();
    let err: unknown;
    try {
      k.alloc(pid, fd);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KernelError);
    expect((err as KernelError).errno).toBe('EIO');
    expect(k.snapshot()).toEqual(before);
    // The refusal itself was journaled once the store answered again; the PASID the failed call drew is the next one handed out.
    expect((await journal.events({ operation: 'ioasid.alloc' })).map((r) => r.errno)).toEqual(['EIO']);
    expect(k.alloc(pid, fd)).toBe(1);
    expect(k.pasidPool().allocated).toBe(1);
  });

  it('an ENQCMD whose row cannot be written submits nothing to the device', () => {
    const a = hostSva(k, DSA0, 3);
    const queued = (): number => k.accelerators.accelerator(DSA0).stats.queued;
    failNextWrite();
    expect(() => k.enqcmd(a.pid, a.dev, { op: 'noop', completion: a.buf + 2 * PAGE })).toThrow(expect.objectContaining({ errno: 'EIO' }));
    expect(queued()).toBe(0);
    expect(k.enqcmd(a.pid, a.dev, { op: 'noop', completion: a.buf + 2 * PAGE })).toEqual({ result: 'accepted' });
    expect(queued()).toBe(1);
  });

  it('while an append waits for the database, later calls wait behind it and see only committed state', async () => {
    const d = k.dispatcher;
    if (!d) throw new Error('no dispatcher');
    const { pid } = k.createProcess('p');
    const fd = k.openIoasid(pid);
    const caller = { kind: 'process', pid } as const;
    // An asynchronous transaction holds the write lock: the next append cannot be synchronous.
    let release!: () => void;
    const held = journal.transaction(() => new Promise<void>((r) => (release = r)));
    const order: string[] = [];
    const alloc = d.exec(ioasidOps.alloc, caller, { fd }).then((r) => {
      order.push('alloc');
      return r;
    });
    const list = d.exec(ioasidOps.list, caller, { fd }).then((r) => {
      order.push('list');
      return r;
    });
    expect(() => d.execSync(ioasidOps.list, caller, { fd })).toThrow(expect.objectContaining({ errno: 'EAGAIN' }));
    await new Promise((r) => setImmediate(r));
    expect(order).toEqual([]);
    release();
    await held;
    const { ioasid } = await alloc;
    expect(await list).toEqual([{ ioasid, state: 'allocated' }]);
    expect(order).toEqual(['alloc', 'list']);
  });

  it('a call with 2^17 events (close of an fd holding 2^16 ioasids) commits them all as child rows (it overflowed the stack: a 500)', async () => {
    // Allocated without a journal (fast), closed through the journaling dispatcher: 2 events per ioasid.
    const n = 2 ** 16;
    const bare = newKernel({ limits: { ...DEFAULT_LIMITS, pasids: n } });
    const { pid } = bare.createProcess('hog');
    const fd = bare.openIoasid(pid);
    for (let i = 0; i < n; i++) bare.alloc(pid, fd);
    const dispatcher = new Dispatcher(bare.kernel, journal);
    await dispatcher.exec(processOps.close, { kind: 'process', pid }, { fd });
    expect(bare.pasidPool()).toMatchObject({ allocated: 0, parked: 0 });
    const [close] = await journal.events({ operation: 'fd.close' });
    expect(close).toMatchObject({ errno: null, object: `fd:${pid}/${fd}` });
    const [{ children }] = (await ds.query('SELECT COUNT(*) AS children FROM journal WHERE parent_span_id = ?', [close.spanId])) as Array<{ children: number }>;
    expect(children).toBe(2 * n);
  });
});
