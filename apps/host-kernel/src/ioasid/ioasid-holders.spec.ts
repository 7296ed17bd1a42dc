import { DSA0, newKernel } from '../kernel.testing';
import { Ioasid, type Holder } from './ioasid';

const kvm = (vpasid: number): Holder => ({ kind: 'kvm', key: `kvm:3:${vpasid}`, vmFd: 3, vpasid });
/** The holder map itself (private): it exists only while there is a holder. */
const heldMap = (i: Ioasid): unknown => (i as unknown as { held: unknown }).held;

describe('Ioasid holders and owner (heap: nothing per ioasid that it does not use)', () => {
  it('has no holder map until its first holder, and drops it with the last; refs count them', () => {
    const i = new Ioasid(5, Object.freeze({ ctxId: 1, pid: 100, fd: 3 }));
    expect(heldMap(i)).toBeNull();
    expect([...i.holders()]).toEqual([]);
    expect(i.refs).toBe(1);
    i.addHolder(kvm(1));
    i.addHolder({ kind: 'child', key: 'child:9', ioasid: 9 });
    expect(heldMap(i)).toBeInstanceOf(Map);
    expect([...i.holders()].map((h) => h.key)).toEqual(['kvm:3:1', 'child:9']);
    expect(i.holder('kvm:3:1')).toEqual(kvm(1));
    expect(i.refs).toBe(3);
    expect(i.hasHolder('kvm')).toBe(true);
    expect(i.describeHolders()).toEqual({ devices: [], kvm: [{ vmFd: 3, vpasid: 1 }], children: [9] });
    i.removeHolder('kvm:3:1');
    expect(i.hasHolder('kvm')).toBe(false);
    expect(heldMap(i)).toBeInstanceOf(Map);
    i.removeHolder('child:9');
    expect(heldMap(i)).toBeNull();
    expect(i.holderCount).toBe(0);
    i.removeHolder('child:9'); // no holder: nothing to drop
    expect(i.refs).toBe(1);
  });

  it('every ioasid of one fd points at the same frozen owner; another fd has its own', () => {
    const k = newKernel();
    const { pid } = k.createProcess('p');
    const fd = k.openIoasid(pid);
    const other = k.openIoasid(pid);
    const [a, b, c] = [k.alloc(pid, fd), k.alloc(pid, fd), k.alloc(pid, other)];
    const owner = (id: number) => k.kernel.ioasids.get(id)?.owner;
    expect(owner(a)).toBe(owner(b));
    expect(owner(a)).toEqual({ ctxId: expect.any(Number), pid, fd });
    expect(Object.isFrozen(owner(a))).toBe(true);
    expect(owner(c)).not.toBe(owner(a));
    expect(owner(c)).toMatchObject({ pid, fd: other });
    expect(k.pasidInfo(b)).toMatchObject({ owner: { pid, fd } });
  });

  it('a device route holds the ioasid through the same map, and letting go frees it', () => {
    const k = newKernel();
    const { pid } = k.createProcess('p');
    const fd = k.openIoasid(pid);
    const dev = k.openDevice(pid, DSA0);
    const id = k.alloc(pid, fd);
    k.bindPgtbl(pid, fd, id, { kind: 'iova' });
    k.allowIoasid(pid, dev, { ioasidFd: fd, ioasid: id, mode: 'pasid' });
    const ioasid = k.kernel.ioasids.get(id) as Ioasid;
    expect(ioasid.holderCount).toBe(1);
    expect(k.info(pid, fd, id)).toMatchObject({ refs: 2, holders: { devices: [`${DSA0}/pasid`] } });
    k.disallowIoasid(pid, dev, { ioasidFd: fd, ioasid: id });
    expect(heldMap(ioasid)).toBeNull();
    expect(k.info(pid, fd, id)).toMatchObject({ refs: 1, holders: { devices: [] } });
  });
});
