import type { InvalidateRequest } from '../ioasid/ioasid-layer';
import { DSA0, errnoOf, expectFails, newKernel, PAGE, vmmWithGpaSpace } from '../kernel.testing';
import { PASID_POOL_SIZE } from './ioasid.constants';

describe('ioasid fd and ALLOC', () => {
  it('fds are the lowest free numbers from 3; ALLOC hands out the lowest free pPASID', () => {
    const k = newKernel();
    const { pid } = k.createProcess('p');
    const fd = k.openIoasid(pid);
    expect(fd).toBe(3);
    expect(k.openIoasid(pid)).toBe(4);
    k.closeFd(pid, 3);
    expect(k.openIoasid(pid)).toBe(3);
    expect([k.alloc(pid, fd), k.alloc(pid, fd), k.alloc(pid, fd)]).toEqual([1, 2, 3]);
    expect(k.list(pid, fd)).toEqual([1, 2, 3].map((ioasid) => ({ ioasid, state: 'allocated' })));
    expect(k.pasidPool()).toEqual({ allocated: 3, parked: 0, free: PASID_POOL_SIZE - 3 });
    expect(k.info(pid, fd, 2)).toEqual({ ioasid: 2, state: 'allocated', pgtbl: null, refs: 1, holders: { devices: [], kvm: [], children: [] } });
    expect(k.pasidInfo(2)).toMatchObject({ pasid: 2, state: 'allocated', owner: { pid, fd } });
  });

  it('EBADF for a closed fd, an fd of the wrong kind, or another process\'s fd number', () => {
    const k = newKernel();
    const a = k.createProcess('a').pid;
    const b = k.createProcess('b').pid;
    const fd = k.openIoasid(a);
    const dev = k.openDevice(a, DSA0);
    expectFails(k, () => k.alloc(a, dev), 'EBADF');
    expectFails(k, () => k.alloc(b, fd), 'EBADF');
    expectFails(k, () => k.alloc(a, 42), 'EBADF');
    k.closeFd(a, fd);
    expectFails(k, () => k.alloc(a, fd), 'EBADF');
    expectFails(k, () => k.closeFd(a, fd), 'EBADF');
  });

  it('an ioasid of another fd is ENOENT, even with the same fd number in another process', () => {
    const k = newKernel();
    const a = k.createProcess('a').pid;
    const b = k.createProcess('b').pid;
    const fdA = k.openIoasid(a);
    const fdB = k.openIoasid(b);
    expect(fdA).toBe(fdB);
    const id = k.alloc(a, fdA);
    expectFails(k, () => k.info(b, fdB, id), 'ENOENT');
    expectFails(k, () => k.bindPgtbl(b, fdB, id, { kind: 'iova' }), 'ENOENT');
    expectFails(k, () => k.destroy(b, fdB, id), 'ENOENT');
    const fdA2 = k.openIoasid(a);
    expectFails(k, () => k.destroy(a, fdA2, id), 'ENOENT');
  });

  it('two fds of one process each see only their own live ioasids; a parked one leaves its fd, not the pool', () => {
    const k = newKernel();
    const { pid } = k.createProcess('p');
    const [fd1, fd2] = [k.openIoasid(pid), k.openIoasid(pid)];
    const [a, b, c] = [k.alloc(pid, fd1), k.alloc(pid, fd2), k.alloc(pid, fd1)];
    expect(k.list(pid, fd1).map((i) => i.ioasid)).toEqual([a, c]);
    expect(k.list(pid, fd2).map((i) => i.ioasid)).toEqual([b]);
    // Parked (a device still holds it): gone from its fd's view, still allocated in the layer.
    const dev = k.openDevice(pid, DSA0);
    k.bindPgtbl(pid, fd1, a, { kind: 'iova' });
    k.allowIoasid(pid, dev, { ioasidFd: fd1, ioasid: a, mode: 'pasid' });
    k.destroy(pid, fd1, a);
    expect(k.list(pid, fd1).map((i) => i.ioasid)).toEqual([c]);
    expectFails(k, () => k.info(pid, fd1, a), 'ENOENT');
    expect(k.pasidInfo(a)).toMatchObject({ state: 'parked' });
    // Closing fd1 destroys only its own: fd2's ioasid stays live and visible.
    k.closeFd(pid, fd1);
    expect(k.list(pid, fd2)).toEqual([{ ioasid: b, state: 'allocated' }]);
    expect(k.pasidInfo(c)).toEqual({ pasid: c, state: 'free' });
  });

  it('ENOSPC once the IOMMU PASID space is exhausted, consuming nothing', () => {
    const k = newKernel({ pasidBits: 3 });
    const { pid } = k.createProcess('p');
    const fd = k.openIoasid(pid);
    for (let i = 1; i < 8; i++) expect(k.alloc(pid, fd)).toBe(i);
    expectFails(k, () => k.alloc(pid, fd), 'ENOSPC');
    k.destroy(pid, fd, 5);
    expect(k.alloc(pid, fd)).toBe(5);
  });
});

describe('BIND_PGTBL', () => {
  it('binds mm, iova and nested tables; nested pins its iova parent', () => {
    const k = newKernel();
    const { pid, fd, gpa } = vmmWithGpaSpace(k);
    const mm = k.alloc(pid, fd);
    k.bindPgtbl(pid, fd, mm, { kind: 'mm' });
    const sva = k.alloc(pid, fd);
    k.bindPgtbl(pid, fd, sva, { kind: 'nested', parent: gpa, root: 0x5000 });
    const pt = k.alloc(pid, fd);
    k.bindPgtbl(pid, fd, pt, { kind: 'nested', parent: gpa });
    expect(k.info(pid, fd, mm).pgtbl).toMatchObject({ kind: 'mm' });
    expect(k.info(pid, fd, sva)).toMatchObject({ state: 'bound', pgtbl: { kind: 'nested', parent: gpa, root: 0x5000 }, refs: 1 });
    expect(k.info(pid, fd, pt).pgtbl).toMatchObject({ kind: 'nested', parent: gpa, root: null });
    expect(k.info(pid, fd, gpa)).toMatchObject({ refs: 3, holders: { children: [sva, pt] }, pgtbl: { kind: 'iova', mappedBytes: 4 * PAGE } });
  });

  it('a second bind is EBUSY; bad kinds, parents and roots are EINVAL; nothing changes', () => {
    const k = newKernel();
    const { pid, fd, gpa } = vmmWithGpaSpace(k);
    const other = k.openIoasid(pid);
    const foreignParent = k.alloc(pid, other);
    k.bindPgtbl(pid, other, foreignParent, { kind: 'iova' });
    const unbound = k.alloc(pid, fd);
    const mm = k.alloc(pid, fd);
    k.bindPgtbl(pid, fd, mm, { kind: 'mm' });
    const id = k.alloc(pid, fd);
    expectFails(k, () => k.bindPgtbl(pid, fd, gpa, { kind: 'iova' }), 'EBUSY');
    expectFails(k, () => k.bindPgtbl(pid, fd, mm, { kind: 'mm' }), 'EBUSY');
    expectFails(k, () => k.bindPgtbl(pid, fd, id, { kind: 'bogus' } as never), 'EINVAL');
    for (const parent of [unbound, mm, foreignParent, 999, id]) {
      expectFails(k, () => k.bindPgtbl(pid, fd, id, { kind: 'nested', parent }), 'EINVAL');
    }
    expectFails(k, () => k.bindPgtbl(pid, fd, id, { kind: 'nested', parent: gpa, root: 0x5008 }), 'EINVAL');
    expectFails(k, () => k.bindPgtbl(pid, fd, id, { kind: 'nested', parent: gpa, root: 2 ** 52 }), 'EINVAL');
    expectFails(k, () => k.bindPgtbl(pid, fd, 999, { kind: 'iova' }), 'ENOENT');
  });

  it('root: null is not an absent root (pass-through): EINVAL, and the ioasid stays unbound', () => {
    const k = newKernel();
    const { pid, fd, gpa } = vmmWithGpaSpace(k);
    const id = k.alloc(pid, fd);
    expectFails(k, () => k.bindPgtbl(pid, fd, id, { kind: 'nested', parent: gpa, root: null }), 'EINVAL');
    expectFails(k, () => k.bindPgtbl(pid, fd, id, { kind: 'iova', root: null } as never), 'EINVAL');
    expect(k.info(pid, fd, id).state).toBe('allocated');
  });
});

describe('MAP / UNMAP (iommufd IOAS rules)', () => {
  function setup(): { k: ReturnType<typeof newKernel>; pid: number; fd: number; id: number; hva: number } {
    const k = newKernel();
    const { pid } = k.createProcess('p');
    const fd = k.openIoasid(pid);
    const id = k.alloc(pid, fd);
    k.bindPgtbl(pid, fd, id, { kind: 'iova' });
    const hva = k.mmap(pid, 16 * PAGE);
    return { k, pid, fd, id, hva };
  }

  it('map pins each frame behind the hva; the same hva mapped twice is pinned twice', () => {
    const { k, pid, fd, id, hva } = setup();
    expect(k.map(pid, fd, id, { iova: 0x10000, hva, length: 2 * PAGE, read: true, write: false })).toBe(0x10000);
    k.map(pid, fd, id, { iova: 0x20000, hva, length: PAGE, read: true, write: true });
    const pins = k.snapshot().pins.map(([, n]) => n);
    expect(pins).toEqual([2, 1]);
    expect(k.info(pid, fd, id).pgtbl).toMatchObject({ mappedBytes: 3 * PAGE });
  });

  it('EINVAL for missing permissions, misalignment, zero length, or a table that is not a bound iova one', () => {
    const { k, pid, fd, id, hva } = setup();
    const base = { iova: 0, hva, length: PAGE, read: true, write: true };
    expectFails(k, () => k.map(pid, fd, id, { ...base, read: false, write: false }), 'EINVAL');
    expectFails(k, () => k.map(pid, fd, id, { ...base, iova: 0x800 }), 'EINVAL');
    expectFails(k, () => k.map(pid, fd, id, { ...base, hva: hva + 1 }), 'EINVAL');
    expectFails(k, () => k.map(pid, fd, id, { ...base, length: 100 }), 'EINVAL');
    expectFails(k, () => k.map(pid, fd, id, { ...base, length: 0 }), 'EINVAL');
    const unbound = k.alloc(pid, fd);
    const mm = k.alloc(pid, fd);
    k.bindPgtbl(pid, fd, mm, { kind: 'mm' });
    expectFails(k, () => k.map(pid, fd, unbound, base), 'EINVAL');
    expectFails(k, () => k.map(pid, fd, mm, base), 'EINVAL');
    expectFails(k, () => k.unmap(pid, fd, mm, { all: true }), 'EINVAL');
    expectFails(k, () => k.map(pid, fd, id, { ...base, iova: 2 ** 48 - PAGE, length: 2 * PAGE }), 'EOVERFLOW');
  });

  it('EEXIST on overlap, EFAULT (nothing pinned) when the hva is not mapped', () => {
    const { k, pid, fd, id, hva } = setup();
    k.map(pid, fd, id, { iova: 4 * PAGE, hva, length: 4 * PAGE, read: true, write: true });
    expectFails(k, () => k.map(pid, fd, id, { iova: 7 * PAGE, hva, length: 2 * PAGE, read: true, write: true }), 'EEXIST');
    expectFails(k, () => k.map(pid, fd, id, { iova: 2 * PAGE, hva, length: 3 * PAGE, read: true, write: true }), 'EEXIST');
    expectFails(k, () => k.map(pid, fd, id, { iova: 0, hva, length: 20 * PAGE, read: true, write: true }), 'EEXIST');
    expectFails(k, () => k.map(pid, fd, id, { iova: 0x100000, hva: hva + 15 * PAGE, length: 2 * PAGE, read: true, write: true }), 'EFAULT');
    expectFails(k, () => k.map(pid, fd, id, { iova: 0x100000, hva: 0x1000, length: PAGE, read: true, write: true }), 'EFAULT');
    k.map(pid, fd, id, { iova: 0, hva, length: 4 * PAGE, read: true, write: true }); // adjacent is fine
  });

  it('unmap removes whole areas only: partial → ENOENT, empty → ENOENT, several whole areas → all, with the byte count', () => {
    const { k, pid, fd, id, hva } = setup();
    for (const iova of [0, 2 * PAGE, 8 * PAGE]) k.map(pid, fd, id, { iova, hva, length: 2 * PAGE, read: true, write: true });
    expectFails(k, () => k.unmap(pid, fd, id, { iova: 0, length: PAGE }), 'ENOENT');
    expectFails(k, () => k.unmap(pid, fd, id, { iova: PAGE, length: 2 * PAGE }), 'ENOENT');
    expectFails(k, () => k.unmap(pid, fd, id, { iova: 0, length: 9 * PAGE }), 'ENOENT'); // splits the last area
    expectFails(k, () => k.unmap(pid, fd, id, { iova: 4 * PAGE, length: 4 * PAGE }), 'ENOENT');
    expectFails(k, () => k.unmap(pid, fd, id, { iova: 0, length: 0 }), 'EINVAL');
    expectFails(k, () => k.unmap(pid, fd, id, { all: false } as never), 'EINVAL');
    expect(k.unmap(pid, fd, id, { iova: 0, length: 6 * PAGE })).toBe(4 * PAGE);
    expect(k.snapshot().pins.map(([, n]) => n)).toEqual([1, 1]);
    expect(k.unmap(pid, fd, id, { all: true })).toBe(2 * PAGE);
    expect(k.snapshot().pins).toEqual([]);
    expect(k.unmap(pid, fd, id, { all: true })).toBe(0);
  });

  it('unmap and invalidate reach the IOTLB hook; invalidate needs a bound ioasid and a sane range', () => {
    const seen: InvalidateRequest[] = [];
    const { k, pid, fd, id, hva } = setup();
    k.onInvalidate = (r) => seen.push(r);
    k.map(pid, fd, id, { iova: 0, hva, length: PAGE, read: true, write: true });
    k.unmap(pid, fd, id, { iova: 0, length: PAGE });
    k.invalidate(pid, fd, id);
    k.invalidate(pid, fd, id, { iova: 0, length: PAGE });
    const pgtblId = k.info(pid, fd, id).pgtbl?.id;
    expect(seen).toEqual([
      { pgtblId, ppasid: id, kind: 'iova', range: { iova: 0, length: PAGE }, reason: 'unmap' },
      { pgtblId, ppasid: id, kind: 'iova', range: null, reason: 'invalidate' },
      { pgtblId, ppasid: id, kind: 'iova', range: { iova: 0, length: PAGE }, reason: 'invalidate' },
    ]);
    expect(errnoOf(() => k.invalidate(pid, fd, k.alloc(pid, fd)))).toBe('EINVAL');
    expect(errnoOf(() => k.invalidate(pid, fd, id, { iova: 0, length: 0 }))).toBe('EINVAL');
    expect(errnoOf(() => k.invalidate(pid, fd, 999))).toBe('ENOENT');
  });
});

describe('DESTROY and parking', () => {
  it('an unheld ioasid is freed at once: ENOENT afterwards and its pPASID is the next one handed out', () => {
    const k = newKernel();
    const { pid, fd, gpa } = vmmWithGpaSpace(k);
    const next = k.alloc(pid, fd);
    k.destroy(pid, fd, gpa);
    expect(k.snapshot().pins).toEqual([]);
    expect(k.pasidInfo(gpa)).toEqual({ pasid: gpa, state: 'free' });
    expectFails(k, () => k.info(pid, fd, gpa), 'ENOENT');
    expectFails(k, () => k.destroy(pid, fd, gpa), 'ENOENT');
    expect(k.list(pid, fd)).toEqual([{ ioasid: next, state: 'allocated' }]);
    expect(k.alloc(pid, fd)).toBe(gpa);
  });

  it('a bound iova parent with live nested children is EBUSY; a parked child keeps the parent parked', () => {
    const k = newKernel();
    const { pid, fd, gpa } = vmmWithGpaSpace(k);
    const child = k.alloc(pid, fd);
    k.bindPgtbl(pid, fd, child, { kind: 'nested', parent: gpa, root: 0 });
    expectFails(k, () => k.destroy(pid, fd, gpa), 'EBUSY');
    const dev = k.openDevice(pid, DSA0);
    k.allowIoasid(pid, dev, { ioasidFd: fd, ioasid: child, mode: 'pasid' });
    k.destroy(pid, fd, child); // parked: the device still holds it
    k.destroy(pid, fd, gpa); // parked: the parked child still pins it
    expect(k.pasidPool()).toMatchObject({ allocated: 0, parked: 2 });
    expect(k.pasidInfo(gpa)).toMatchObject({ state: 'parked', refs: 1, holders: { children: [child] } });
    expect(k.disallowIoasid(pid, dev, { ioasidFd: fd, ioasid: child })).toEqual({ changed: true });
    expect(k.pasidPool()).toMatchObject({ allocated: 0, parked: 0 });
    expect(k.pasidInfo(gpa).state).toBe('free');
  });

  it('parking rule: destroyed while a device is allowed → blocked, wiped, hidden, never reallocated until disallow', () => {
    const drained: string[] = [];
    const k = newKernel({ drain: (bdf, p) => drained.push(`${bdf}/${p}`) });
    const { pid, fd, gpa } = vmmWithGpaSpace(k);
    const dev = k.openDevice(pid, DSA0);
    k.allowIoasid(pid, dev, { ioasidFd: fd, ioasid: gpa, mode: 'pasid' });
    const handle = k.route(DSA0, gpa);
    expect(handle?.kind).toBe('iova');
    k.destroy(pid, fd, gpa);
    expect(drained).toEqual([`${DSA0}/${gpa}`]);
    expect(handle?.destroyed).toBe(true);
    expect(k.route(DSA0, gpa)).toBeNull();
    expect(k.snapshot().pins).toEqual([]);
    expect(k.pasidInfo(gpa)).toMatchObject({ state: 'parked', refs: 1, holders: { devices: [`${DSA0}/pasid`] } });
    expectFails(k, () => k.info(pid, fd, gpa), 'ENOENT');
    expect(k.list(pid, fd)).toEqual([]);
    const fresh = [k.alloc(pid, fd), k.alloc(pid, fd)];
    expect(fresh).not.toContain(gpa);
    expect(k.disallowIoasid(pid, dev, { ioasidFd: fd, ioasid: gpa })).toEqual({ changed: true });
    expect(k.pasidInfo(gpa).state).toBe('free');
    expect(k.alloc(pid, fd)).toBe(gpa);
    expect(k.disallowIoasid(pid, dev, { ioasidFd: fd, ioasid: gpa })).toEqual({ changed: false });
  });

  it('closing the ioasid fd destroys every ioasid (children first) and detaches its device routes; KVM entries keep theirs parked', () => {
    const drained: string[] = [];
    const k = newKernel({ drain: (bdf, p) => drained.push(`${bdf}/${p}`) });
    const { pid, fd, gpa } = vmmWithGpaSpace(k);
    const child = k.alloc(pid, fd);
    k.bindPgtbl(pid, fd, child, { kind: 'nested', parent: gpa });
    const spare = k.alloc(pid, fd);
    const dev = k.openDevice(pid, DSA0);
    k.allowIoasid(pid, dev, { ioasidFd: fd, ioasid: gpa, mode: 'rid' });
    k.allowIoasid(pid, dev, { ioasidFd: fd, ioasid: child, mode: 'pasid' });
    const vm = k.createVm(pid);
    k.setPasidTranslation(pid, vm, true);
    k.mapPasid(pid, vm, { vpasid: 4, ioasidFd: fd, ioasid: child });
    k.closeFd(pid, fd);
    // Every route went the DISALLOW way (drained, then removed): nothing left for the device fd to let go of.
    expect(drained).toEqual([`${DSA0}/${child}`, `${DSA0}/null`]);
    expect(k.snapshot().routes).toEqual([]);
    expect(k.deviceDma(DSA0, { pasid: null, address: 0, length: 4, write: false })).toMatchObject({ ok: false, fault: { reason: 'no-route' } });
    // The child is still held by the KVM entry (and pins its parent); the unheld spare is free already.
    expect(k.pasidPool()).toMatchObject({ allocated: 0, parked: 2 });
    expect(k.pasidInfo(child)).toMatchObject({ state: 'parked', holders: { devices: [], kvm: [{ vmFd: vm, vpasid: 4 }] } });
    expect(k.pasidInfo(gpa)).toMatchObject({ state: 'parked', holders: { devices: [], children: [child] } });
    expect(k.pasidInfo(spare).state).toBe('free');
    expectFails(k, () => k.disallowIoasid(pid, dev, { ioasidFd: fd, ioasid: gpa }), 'EBADF');
    k.unmapPasid(pid, vm, 4);
    expect(k.pasidPool()).toMatchObject({ allocated: 0, parked: 0 });
    for (const id of [gpa, child, spare]) expect(k.pasidInfo(id).state).toBe('free');
    // The device's RID slot is free for a new ioasid without closing the device fd.
    const fd2 = k.openIoasid(pid);
    const again = k.alloc(pid, fd2);
    k.bindPgtbl(pid, fd2, again, { kind: 'iova' });
    k.allowIoasid(pid, dev, { ioasidFd: fd2, ioasid: again, mode: 'rid' });
    expect(k.snapshot().routes).toEqual([expect.objectContaining({ bdf: DSA0, ppasid: null, ioasid: again, blocked: false })]);
  });
});
