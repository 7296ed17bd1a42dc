import { GuestOs } from './guest-os';
import { FakeVmm } from './iommu/fake-vmm';

const VRID = 0x08;

describe('GuestOs', () => {
  it('boots, runs a process through mmap, bind, fill, munmap (with IOTLB flush) and reports status', async () => {
    const vmm = new FakeVmm({ memoryMiB: 2, vcpus: 1, devices: [{ vrid: VRID, bdf: '0000:6a:01.0' }] });
    const os = new GuestOs(vmm, { yield: async () => undefined });
    expect(os.status().booted).toBe(false);
    await expect(os.createProcess('x')).rejects.toMatchObject({ errno: 'ENODEV' });
    await os.boot();
    await expect(os.boot()).rejects.toMatchObject({ errno: 'EBUSY' });
    const pid = await os.createProcess('app');
    const buf = await os.mmap(pid, 4096);
    const vpasid = await os.bind(pid, VRID);
    expect(await os.submit(pid, VRID, { op: 'fill', dst: buf, length: 16, pattern: 0xab })).toEqual({ result: 'accepted', status: 1, bytes: 16 });
    expect(await os.readMemory(pid, buf, 16)).toEqual(Buffer.alloc(16, 0xab));
    await expect(os.submit(pid, 0x10, { op: 'noop' })).rejects.toMatchObject({ errno: 'ENODEV' });
    await expect(os.submit(pid, VRID, { op: 'noop' }, 3)).rejects.toMatchObject({ errno: 'EINVAL' });
    await os.munmap(pid, buf, 4096);
    expect(vmm.invalidations.at(-1)).toEqual([{ type: 'piotlb', vpasid, addr: buf, npages: 1 }, { type: 'wait' }]);
    const st = os.status();
    expect(st.processes).toEqual([{ pid, name: 'app', cr3: expect.any(Number), mappings: 1, vpasid, vrids: [VRID] }]);
    expect(st.frames.total).toBe(512);
    await os.unbind(pid, VRID);
    // The process keeps its vPASID after unbind (mm->pasid); it is bound to no device any more.
    expect(os.status().processes[0]).toMatchObject({ vpasid, vrids: [] });
    // Its ENQCMD still loads IA32_PASID = valid | vPASID, now unmapped: #GP, nothing reaches the device.
    const submitted = vmm.submitted.length;
    expect(await os.submit(pid, VRID, { op: 'noop' })).toEqual({ result: 'gp', reason: 'vpasid-unmapped' });
    expect(vmm.msrs.get(0)).toBe(0x8000_0000 + vpasid);
    expect(vmm.submitted.length).toBe(submitted);
  });

  it('munmap whose IOTLB invalidation faults is EIO and quarantines the frames (never reused)', async () => {
    const vmm = new FakeVmm({ memoryMiB: 2, vcpus: 1, devices: [{ vrid: VRID, bdf: '0000:6a:01.0' }] });
    const os = new GuestOs(vmm, { yield: async () => undefined });
    await os.boot();
    const pid = await os.createProcess('app');
    const buf = await os.mmap(pid, 2 * 4096);
    const vpasid = await os.bind(pid, VRID);
    const free = os.status().frames.free;
    vmm.refusePiotlb = (v) => (v === vpasid ? 'EIO' : null);
    await expect(os.munmap(pid, buf, 2 * 4096)).rejects.toMatchObject({ errno: 'EIO' });
    // The mapping is gone for the CPU, but its two frames stay allocated.
    expect(os.status().processes[0].mappings).toBe(0);
    expect(os.status().frames.free).toBe(free);
    await expect(os.readMemory(pid, buf, 1)).rejects.toMatchObject({ errno: 'EFAULT' });
    vmm.refusePiotlb = null;
    const again = await os.mmap(pid, 2 * 4096);
    expect(again).toBe(buf + 2 * 4096);
  });
});
