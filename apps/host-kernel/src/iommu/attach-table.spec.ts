import { Tx } from '../fault-injection';
import type { PageTableHandle } from '../ioasid/pgtbl';
import { AttachTable } from './attach-table';

const BDF = '0000:6a:01.0';
const OTHER = '0000:6b:01.0';
const table = (id: number, ppasid: number): PageTableHandle => ({ kind: 'iova', id, ppasid, destroyed: false, iopf: null, lookup: () => null });

describe('AttachTable: the data plane\'s route lookup', () => {
  // route() remembers its last answer (a descriptor's requests ask the same one): every change must be seen at once.
  it('sees attach, detach, their rollback and another device at the next lookup', () => {
    const t = new AttachTable();
    t.addDevice(BDF);
    t.addDevice(OTHER);
    const a = table(1, 5);
    const b = table(2, 5);
    expect(t.route(BDF, 5)).toBeNull();
    t.attach(new Tx(), BDF, 5, a);
    expect(t.route(BDF, 5)?.pgtbl).toBe(a);
    expect(t.route(OTHER, 5)).toBeNull();
    expect(t.route(BDF, 5)?.pgtbl).toBe(a);
    t.detach(new Tx(), BDF, 5);
    expect(t.route(BDF, 5)).toBeNull();
    const tx = new Tx();
    t.attach(tx, BDF, 5, b);
    expect(t.route(BDF, 5)?.pgtbl).toBe(b);
    tx.rollback();
    expect(t.route(BDF, 5)).toBeNull();
    t.attach(new Tx(), BDF, 5, a);
    const undo = new Tx();
    t.detach(undo, BDF, 5);
    expect(t.route(BDF, 5)).toBeNull();
    undo.rollback();
    expect(t.route(BDF, 5)?.pgtbl).toBe(a);
    // Blocking changes the entry in place: the remembered answer is that entry.
    t.block(new Tx(), BDF, 5);
    expect(t.route(BDF, 5)?.blocked).toBe(true);
    expect(t.lookup(BDF, 5)).toBeNull();
  });

  it('keeps RID and PASID routes apart (PASID 0 is the RID)', () => {
    const t = new AttachTable();
    t.addDevice(BDF);
    const rid = table(3, 9);
    t.attach(new Tx(), BDF, null, rid);
    expect(t.route(BDF, 0)?.pgtbl).toBe(rid);
    expect(t.route(BDF, 9)).toBeNull();
    expect(t.route(BDF, null)?.pgtbl).toBe(rid);
    t.detach(new Tx(), BDF, 0);
    expect(t.route(BDF, null)).toBeNull();
  });
});
