import { Kernel } from '../kernel';
import { DSA0, DSA1, errnoOf, expectFails, newKernel, NOPASID, PAGE, TEST_DEVICES, vmmWithGpaSpace } from '../kernel.testing';

describe('VFIO devices', () => {
  it('come from config; bad or duplicate config is refused', () => {
    const k = newKernel();
    expect(k.listDevices()).toEqual(TEST_DEVICES);
    expect(errnoOf(() => new Kernel({ memoryMiB: 1, devices: [{ ...TEST_DEVICES[0], bdf: '6a:01.0' }] }))).toBe('EINVAL');
    expect(errnoOf(() => new Kernel({ memoryMiB: 1, devices: [{ ...TEST_DEVICES[0], pasidWidth: 21 }] }))).toBe('EINVAL');
    expect(errnoOf(() => new Kernel({ memoryMiB: 1, devices: [{ ...TEST_DEVICES[0], wqDepth: 0 }] }))).toBe('EINVAL');
    expect(errnoOf(() => new Kernel({ memoryMiB: 1, devices: [TEST_DEVICES[0], TEST_DEVICES[0]] }))).toBe('EEXIST');
  });

  it('open is exclusive (EBUSY), unknown bdf is ENODEV, close makes it openable again', () => {
    const k = newKernel();
    const a = k.createProcess('a').pid;
    const b = k.createProcess('b').pid;
    const fd = k.openDevice(a, DSA0);
    expect(k.deviceBdf(a, fd)).toBe(DSA0);
    expectFails(k, () => k.openDevice(a, DSA0), 'EBUSY');
    expectFails(k, () => k.openDevice(b, DSA0), 'EBUSY');
    expectFails(k, () => k.openDevice(a, '0000:00:00.0'), 'ENODEV');
    expectFails(k, () => k.deviceBdf(b, fd), 'EBADF');
    k.closeFd(a, fd);
    expect(k.openDevice(b, DSA0)).toBe(3);
  });
});

describe('DEVICE_ALLOW_IOASID', () => {
  it('routes RID or RID+PASID to the page table and takes one reference per route', () => {
    const k = newKernel();
    const { pid, fd, gpa } = vmmWithGpaSpace(k);
    const dev = k.openDevice(pid, DSA0);
    k.allowIoasid(pid, dev, { ioasidFd: fd, ioasid: gpa, mode: 'rid' });
    k.allowIoasid(pid, dev, { ioasidFd: fd, ioasid: gpa, mode: 'pasid' });
    expect(k.info(pid, fd, gpa)).toMatchObject({ refs: 3, holders: { devices: [`${DSA0}/pasid`, `${DSA0}/rid`] } });
    expect(k.route(DSA0, null)).toBe(k.route(DSA0, gpa));
    expect(k.route(DSA0, 0)).toBe(k.route(DSA0, null));
    expect(k.route(DSA1, null)).toBeNull();
    expect(k.route(DSA0, gpa + 1)).toBeNull();
  });

  it('errnos: EBADF for bad fds, ENOENT for unknown ioasids, EINVAL for unbound/no PASID cap/bad mode, EBUSY for a taken route', () => {
    const k = newKernel();
    const { pid, fd, gpa } = vmmWithGpaSpace(k);
    const other = k.createProcess('other').pid;
    const otherFd = k.openIoasid(other);
    const dev = k.openDevice(pid, DSA0);
    const noPasid = k.openDevice(pid, NOPASID);
    const unbound = k.alloc(pid, fd);
    const gpa2 = k.alloc(pid, fd);
    k.bindPgtbl(pid, fd, gpa2, { kind: 'iova' });
    expectFails(k, () => k.allowIoasid(pid, fd, { ioasidFd: fd, ioasid: gpa, mode: 'rid' }), 'EBADF');
    expectFails(k, () => k.allowIoasid(pid, dev, { ioasidFd: dev, ioasid: gpa, mode: 'rid' }), 'EBADF');
    expectFails(k, () => k.allowIoasid(pid, dev, { ioasidFd: 99, ioasid: gpa, mode: 'rid' }), 'EBADF');
    expectFails(k, () => k.allowIoasid(other, dev, { ioasidFd: otherFd, ioasid: gpa, mode: 'rid' }), 'EBADF');
    expectFails(k, () => k.allowIoasid(pid, dev, { ioasidFd: fd, ioasid: 999, mode: 'rid' }), 'ENOENT');
    expectFails(k, () => k.allowIoasid(pid, dev, { ioasidFd: fd, ioasid: unbound, mode: 'rid' }), 'EINVAL');
    expectFails(k, () => k.allowIoasid(pid, noPasid, { ioasidFd: fd, ioasid: gpa, mode: 'pasid' }), 'EINVAL');
    expectFails(k, () => k.allowIoasid(pid, dev, { ioasidFd: fd, ioasid: gpa, mode: 'bogus' as never }), 'EINVAL');
    k.allowIoasid(pid, noPasid, { ioasidFd: fd, ioasid: gpa, mode: 'rid' });
    k.allowIoasid(pid, dev, { ioasidFd: fd, ioasid: gpa, mode: 'pasid' });
    expectFails(k, () => k.allowIoasid(pid, dev, { ioasidFd: fd, ioasid: gpa, mode: 'pasid' }), 'EBUSY');
    k.allowIoasid(pid, dev, { ioasidFd: fd, ioasid: gpa, mode: 'rid' });
    expectFails(k, () => k.allowIoasid(pid, dev, { ioasidFd: fd, ioasid: gpa2, mode: 'rid' }), 'EBUSY');
  });

  it('a pPASID beyond the device PASID width is EINVAL', () => {
    const k = newKernel({ devices: [{ ...TEST_DEVICES[0], pasidWidth: 1 }] });
    const { pid, fd } = vmmWithGpaSpace(k); // ioasid 1
    const dev = k.openDevice(pid, DSA0);
    const id2 = k.alloc(pid, fd);
    k.bindPgtbl(pid, fd, id2, { kind: 'mm' });
    expectFails(k, () => k.allowIoasid(pid, dev, { ioasidFd: fd, ioasid: id2, mode: 'pasid' }), 'EINVAL');
    k.allowIoasid(pid, dev, { ioasidFd: fd, ioasid: 1, mode: 'pasid' });
  });
});

describe('page-table handles given to the data plane', () => {
  it('iova, mm and nested handles translate to the frames the process sees', () => {
    const k = newKernel();
    const { pid, fd, gpa, hva } = vmmWithGpaSpace(k);
    const dev = k.openDevice(pid, DSA0);
    k.writeMemory(pid, hva + PAGE + 8, Buffer.from('guest'));
    k.allowIoasid(pid, dev, { ioasidFd: fd, ioasid: gpa, mode: 'rid' });
    const iova = k.route(DSA0, null);
    if (iova?.kind !== 'iova') throw new Error('expected an iova route');
    const t = iova.lookup(PAGE + 8);
    expect(t).toMatchObject({ read: true, write: true });
    expect(k.memory.read(t?.hpa ?? 0, 5).toString()).toBe('guest');
    expect(iova.lookup(64 * PAGE)).toBeNull();

    const sva = k.alloc(pid, fd);
    k.bindPgtbl(pid, fd, sva, { kind: 'mm' });
    k.allowIoasid(pid, dev, { ioasidFd: fd, ioasid: sva, mode: 'pasid' });
    const mm = k.route(DSA0, sva);
    if (mm?.kind !== 'mm') throw new Error('expected an mm route');
    expect(mm.lookup(hva + PAGE + 8)?.hpa).toBe(t?.hpa);
    expect(mm.lookup(0x1000)).toBeNull();

    const nested = k.alloc(pid, fd);
    k.bindPgtbl(pid, fd, nested, { kind: 'nested', parent: gpa, root: 2 * PAGE });
    k.allowIoasid(pid, dev, { ioasidFd: fd, ioasid: nested, mode: 'pasid' });
    const n = k.route(DSA0, nested);
    if (n?.kind !== 'nested') throw new Error('expected a nested route');
    expect(n.root).toBe(2 * PAGE);
    expect(n.parent).toBe(iova);
    expect(new Set([iova.id, mm.id, n.id]).size).toBe(3);
  });
});

describe('DEVICE_DISALLOW_IOASID', () => {
  it('blocks the route, calls drain while the route is still there, removes it and drops the reference', () => {
    const k = newKernel();
    const { pid, fd, gpa } = vmmWithGpaSpace(k);
    const seen: unknown[] = [];
    k.drain = (bdf, ppasid) => seen.push({ bdf, ppasid, route: k.route(bdf, ppasid), table: k.snapshot().routes });
    const dev = k.openDevice(pid, DSA0);
    k.allowIoasid(pid, dev, { ioasidFd: fd, ioasid: gpa, mode: 'pasid' });
    const pgtblId = k.info(pid, fd, gpa).pgtbl?.id;
    expect(k.disallowIoasid(pid, dev, { ioasidFd: fd, ioasid: gpa })).toEqual({ changed: true });
    expect(seen).toEqual([{ bdf: DSA0, ppasid: gpa, route: null, table: [{ bdf: DSA0, ppasid: gpa, ioasid: gpa, pgtblId, blocked: true }] }]);
    expect(k.snapshot().routes).toEqual([]);
    expect(k.info(pid, fd, gpa).refs).toBe(1);
  });

  it('a route that does not exist is a no-op {changed:false}; bad fds are still EBADF', () => {
    const k = newKernel();
    const { pid, fd, gpa } = vmmWithGpaSpace(k);
    const dev = k.openDevice(pid, DSA0);
    const before = k.snapshot();
    expect(k.disallowIoasid(pid, dev, { ioasidFd: fd, ioasid: gpa })).toEqual({ changed: false });
    expect(k.disallowIoasid(pid, dev, { ioasidFd: fd, ioasid: 12345 })).toEqual({ changed: false });
    expect(k.snapshot()).toEqual(before);
    expectFails(k, () => k.disallowIoasid(pid, fd, { ioasidFd: fd, ioasid: gpa }), 'EBADF');
    expectFails(k, () => k.disallowIoasid(pid, dev, { ioasidFd: dev, ioasid: gpa }), 'EBADF');
  });

  it('a failing drain hook fails the disallow and leaves the route and reference in place', () => {
    const k = newKernel();
    const { pid, fd, gpa } = vmmWithGpaSpace(k);
    const dev = k.openDevice(pid, DSA0);
    k.allowIoasid(pid, dev, { ioasidFd: fd, ioasid: gpa, mode: 'rid' });
    k.drain = () => {
      throw new Error('device hung');
    };
    const before = k.snapshot();
    expect(() => k.disallowIoasid(pid, dev, { ioasidFd: fd, ioasid: gpa })).toThrow('device hung');
    expect(k.snapshot()).toEqual(before);
    expect(k.route(DSA0, null)).not.toBeNull();
  });

  it('closing the device fd disallows everything it allowed', () => {
    const k = newKernel();
    const { pid, fd, gpa } = vmmWithGpaSpace(k);
    const dev = k.openDevice(pid, DSA0);
    const sva = k.alloc(pid, fd);
    k.bindPgtbl(pid, fd, sva, { kind: 'mm' });
    k.allowIoasid(pid, dev, { ioasidFd: fd, ioasid: gpa, mode: 'rid' });
    k.allowIoasid(pid, dev, { ioasidFd: fd, ioasid: sva, mode: 'pasid' });
    k.closeFd(pid, dev);
    expect(k.snapshot().routes).toEqual([]);
    expect(k.info(pid, fd, gpa).refs).toBe(1);
    expect(k.info(pid, fd, sva).refs).toBe(1);
    expect(k.snapshot().devices.find((d) => d.bdf === DSA0)?.openedBy).toBeNull();
  });
});
