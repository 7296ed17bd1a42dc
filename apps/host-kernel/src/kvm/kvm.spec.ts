import { DSA0, errnoOf, expectFails, newKernel, PAGE, vmmWithGpaSpace, type TestKernel } from '../kernel.testing';

function vmWithRam(k: TestKernel, pages = 4): { pid: number; fd: number; gpa: number; hva: number; vm: number; dev: number } {
  const env = vmmWithGpaSpace(k, pages);
  const vm = k.createVm(env.pid);
  k.addMemslot(env.pid, vm, { gpa: 0, size: pages * PAGE, hva: env.hva });
  const dev = k.openDevice(env.pid, DSA0);
  k.allowIoasid(env.pid, dev, { ioasidFd: env.fd, ioasid: env.gpa, mode: 'rid' });
  return { ...env, vm, dev };
}

describe('KVM VM, memslots and guest memory', () => {
  it('creates vCPUs 0, 1, 2… and accesses guest memory through memslots, across slots', () => {
    const k = newKernel();
    const { pid } = k.createProcess('vmm');
    const vm = k.createVm(pid);
    expect(k.process(pid).fds).toEqual([{ fd: vm, kind: 'kvm-vm' }]);
    expect([k.createVcpu(pid, vm), k.createVcpu(pid, vm), k.createVcpu(pid, vm)]).toEqual([0, 1, 2]);
    const low = k.mmap(pid, 2 * PAGE);
    const high = k.mmap(pid, 2 * PAGE);
    k.addMemslot(pid, vm, { gpa: 0x10000, size: 2 * PAGE, hva: high });
    k.addMemslot(pid, vm, { gpa: 0x10000 - 2 * PAGE, size: 2 * PAGE, hva: low });
    const data = Buffer.from('spans two memslots');
    k.writeGuestMemory(pid, vm, 0x10000 - 4, data);
    expect(k.readGuestMemory(pid, vm, 0x10000 - 4, data.length)).toEqual(data);
    expect(k.readMemory(pid, low + 2 * PAGE - 4, 4).toString()).toBe('span');
    expect(k.readMemory(pid, high, 4).toString()).toBe('s tw');
  });

  it('memslot errnos: EINVAL (alignment, size 0, beyond 2^52), EEXIST (overlap), EFAULT (hva not mapped)', () => {
    const k = newKernel();
    const { pid } = k.createProcess('vmm');
    const vm = k.createVm(pid);
    const hva = k.mmap(pid, 4 * PAGE);
    k.addMemslot(pid, vm, { gpa: 4 * PAGE, size: 2 * PAGE, hva });
    expectFails(k, () => k.addMemslot(pid, vm, { gpa: 1, size: PAGE, hva }), 'EINVAL');
    expectFails(k, () => k.addMemslot(pid, vm, { gpa: 0, size: 0, hva }), 'EINVAL');
    expectFails(k, () => k.addMemslot(pid, vm, { gpa: 0, size: PAGE, hva: hva + 8 }), 'EINVAL');
    expectFails(k, () => k.addMemslot(pid, vm, { gpa: 2 ** 52, size: PAGE, hva }), 'EINVAL');
    expectFails(k, () => k.addMemslot(pid, vm, { gpa: 5 * PAGE, size: 2 * PAGE, hva }), 'EEXIST');
    expectFails(k, () => k.addMemslot(pid, vm, { gpa: 0, size: 8 * PAGE, hva }), 'EEXIST');
    expectFails(k, () => k.addMemslot(pid, vm, { gpa: 0, size: 8 * PAGE, hva: 0x100000 }), 'EEXIST');
    expectFails(k, () => k.addMemslot(pid, vm, { gpa: 0x100000, size: 8 * PAGE, hva }), 'EFAULT');
    const dev = k.openDevice(pid, DSA0);
    expectFails(k, () => k.addMemslot(pid, dev, { gpa: 0x100000, size: PAGE, hva }), 'EBADF');
  });

  it('guest access outside the memslots is EFAULT and writes nothing', () => {
    const k = newKernel();
    const { pid, vm, hva } = vmWithRam(k, 2);
    expectFails(k, () => k.writeGuestMemory(pid, vm, 2 * PAGE - 2, Buffer.from('abcd')), 'EFAULT');
    expect(k.readMemory(pid, hva + 2 * PAGE - 2, 2)).toEqual(Buffer.alloc(2));
    expect(errnoOf(() => k.readGuestMemory(pid, vm, 2 * PAGE, 1))).toBe('EFAULT');
  });
});

describe('IA32_PASID', () => {
  it('vCPU and process WRMSR accept bits 19:0 and 31 only, and only the IA32_PASID MSR', () => {
    const k = newKernel();
    const { pid } = k.createProcess('vmm');
    const vm = k.createVm(pid);
    const vcpu = k.createVcpu(pid, vm);
    k.vcpuWrmsr(pid, vm, vcpu, 'IA32_PASID', 0x8000_0005);
    expect(k.vcpuRdmsr(pid, vm, vcpu, 'IA32_PASID')).toBe(0x8000_0005);
    for (const bad of [0x0010_0000, 0x4000_0000, 2 ** 32, -1, 1.5]) expectFails(k, () => k.vcpuWrmsr(pid, vm, vcpu, 'IA32_PASID', bad), 'EINVAL');
    expectFails(k, () => k.vcpuWrmsr(pid, vm, vcpu, 'IA32_EFER', 0), 'EINVAL');
    expectFails(k, () => k.vcpuWrmsr(pid, vm, 7, 'IA32_PASID', 0), 'ENOENT');
    k.wrmsr(pid, 'IA32_PASID', 0x800f_ffff);
    expect(k.rdmsr(pid, 'IA32_PASID')).toBe(0x800f_ffff);
    expectFails(k, () => k.wrmsr(pid, 'IA32_PASID', 0x7ff0_0000), 'EINVAL');
    expectFails(k, () => k.wrmsr(pid, 'MSR_FOO', 1), 'EINVAL');
  });
});

describe('KVM PASID translation', () => {
  it('maps a vPASID to a bound, allowed ioasid, takes a reference, translates, and unmaps', () => {
    const k = newKernel();
    const { pid, fd, gpa, vm } = vmWithRam(k);
    k.setPasidTranslation(pid, vm, true);
    k.mapPasid(pid, vm, { vpasid: 7, ioasidFd: fd, ioasid: gpa });
    expect(k.translateVpasid(pid, vm, 7)).toBe(gpa);
    expect(k.translateVpasid(pid, vm, 8)).toBeNull();
    expect(k.info(pid, fd, gpa)).toMatchObject({ refs: 3, holders: { kvm: [{ vmFd: vm, vpasid: 7 }] } });
    k.unmapPasid(pid, vm, 7);
    expect(k.translateVpasid(pid, vm, 7)).toBeNull();
    expect(k.info(pid, fd, gpa).refs).toBe(2);
    expectFails(k, () => k.unmapPasid(pid, vm, 7), 'ENOENT');
  });

  it('errnos: EINVAL (translation off, vPASID range, not bound, on no device), EBADF, ENOENT, EEXIST, EBUSY', () => {
    const k = newKernel();
    const { pid, fd, gpa, vm, dev } = vmWithRam(k);
    const m = (vpasid: number, ioasid: number, ioasidFd = fd) => () => k.mapPasid(pid, vm, { vpasid, ioasidFd, ioasid });
    expectFails(k, m(1, gpa), 'EINVAL'); // translation not enabled
    k.setPasidTranslation(pid, vm, true);
    expectFails(k, m(0, gpa), 'EINVAL');
    expectFails(k, m(2 ** 20, gpa), 'EINVAL');
    expectFails(k, m(1, gpa, dev), 'EBADF');
    expectFails(k, m(1, gpa, 77), 'EBADF');
    expectFails(k, () => k.mapPasid(pid, dev, { vpasid: 1, ioasidFd: fd, ioasid: gpa }), 'EBADF');
    const other = k.createProcess('other').pid;
    expectFails(k, () => k.mapPasid(other, vm, { vpasid: 1, ioasidFd: fd, ioasid: gpa }), 'EBADF');
    expectFails(k, m(1, 999), 'ENOENT');
    const fd2 = k.openIoasid(pid);
    const foreign = k.alloc(pid, fd2);
    expectFails(k, m(1, foreign), 'ENOENT');
    const unbound = k.alloc(pid, fd);
    expectFails(k, m(1, unbound), 'EINVAL');
    const unallowed = k.alloc(pid, fd);
    k.bindPgtbl(pid, fd, unallowed, { kind: 'mm' });
    expectFails(k, m(1, unallowed), 'EINVAL');
    k.mapPasid(pid, vm, { vpasid: 1, ioasidFd: fd, ioasid: gpa });
    expectFails(k, m(1, gpa), 'EEXIST');
    expectFails(k, m(2, gpa), 'EBUSY');
    expectFails(k, () => k.setPasidTranslation(pid, vm, false), 'EBUSY');
  });

  it('a destroyed ioasid stops translating but stays held (parked) until UNMAP_PASID; parked is ENOENT for MAP_PASID', () => {
    const k = newKernel();
    const { pid, fd, gpa, vm, dev } = vmWithRam(k);
    k.setPasidTranslation(pid, vm, true);
    k.mapPasid(pid, vm, { vpasid: 5, ioasidFd: fd, ioasid: gpa });
    k.destroy(pid, fd, gpa);
    expect(k.translateVpasid(pid, vm, 5)).toBeNull();
    expectFails(k, () => k.mapPasid(pid, vm, { vpasid: 6, ioasidFd: fd, ioasid: gpa }), 'ENOENT');
    expect(k.pasidInfo(gpa)).toMatchObject({ state: 'parked', refs: 2 });
    k.unmapPasid(pid, vm, 5);
    expect(k.pasidInfo(gpa)).toMatchObject({ state: 'parked', refs: 1 });
    k.disallowIoasid(pid, dev, { ioasidFd: fd, ioasid: gpa });
    expect(k.pasidInfo(gpa).state).toBe('free');
  });

  it('closing the VM fd drops every vPASID mapping', () => {
    const k = newKernel();
    const { pid, fd, gpa, vm } = vmWithRam(k);
    k.setPasidTranslation(pid, vm, true);
    k.mapPasid(pid, vm, { vpasid: 5, ioasidFd: fd, ioasid: gpa });
    k.closeFd(pid, vm);
    expect(k.info(pid, fd, gpa)).toMatchObject({ refs: 2, holders: { kvm: [] } });
    expectFails(k, () => k.translateVpasid(pid, vm, 5), 'EBADF');
  });
});
