import type { HostKernelPort } from '../../vmm/src/host-kernel.port';
import { type FailWhen, failWhen } from '../../../stack/fail-when';
import { GuestOs } from './guest-os';
import { IA32_PASID_VALID } from '@app/shared/x86/msr.constants';
import { PAGE_SIZE } from './mm/mm.constants';
import { DSA0, VmOnStack } from '../../../stack/fixtures/vm-on-stack';

/** A fill pattern is 8 bytes, little-endian: byte i of the destination is byte i % 8 of the pattern (DSA). */
const PATTERN = 0x1122_3344_55ab;
function patternBytes(pattern: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(pattern));
  return b;
}

afterEach(() => VmOnStack.closeAll());

describe('GuestOs', () => {
  it('boots, runs a process through mmap, bind, fill, munmap (with IOTLB flush) and reports status', async () => {
    const bed = await VmOnStack.start({ memoryMiB: 2, vcpus: 1, devices: [DSA0] });
    const vrid = bed.vrid(DSA0);
    const os = new GuestOs(bed.port);
    expect(os.status().booted).toBe(false);
    await expect(os.createProcess('x')).rejects.toMatchObject({ errno: 'ENODEV' });
    await os.boot();
    await expect(os.boot()).rejects.toMatchObject({ errno: 'EBUSY' });
    const pid = await os.createProcess('app');
    // Populated now: this bare OS holds no lifeline, so nobody would answer a page request of the device.
    const buf = await os.mmap(pid, 4096, true);
    const vpasid = await os.bind(pid, vrid);
    expect(await os.submit(pid, vrid, { op: 'fill', dst: buf, length: 16, pattern: PATTERN })).toEqual({ result: 'accepted', status: 1, bytes: 16 });
    expect(await os.readMemory(pid, buf, 16)).toEqual(Buffer.concat([patternBytes(PATTERN), patternBytes(PATTERN)]));
    // The next virtual slot (vrid + 1 << 3) holds no device.
    expect(bed.machine.devices.map((d) => d.vrid)).not.toContain(vrid + 8);
    await expect(os.submit(pid, vrid + 8, { op: 'noop' })).rejects.toMatchObject({ errno: 'ENODEV' });
    await expect(os.submit(pid, vrid, { op: 'noop' }, bed.machine.vcpus)).rejects.toMatchObject({ errno: 'EINVAL' });
    await os.munmap(pid, buf, 4096);
    expect((await bed.invalidations()).at(-1)).toEqual([{ type: 'piotlb', vpasid, addr: buf, npages: 1 }, { type: 'wait' }]);
    const st = os.status();
    expect(st.processes).toEqual([{ pid, name: 'app', cr3: expect.any(Number), mappings: 1, vpasid, vrids: [vrid] }]);
    expect(st.frames.total).toBe(bed.ramBytes / PAGE_SIZE);
    await os.unbind(pid, vrid);
    // The process keeps its vPASID after unbind (mm->pasid); it is bound to no device any more.
    expect(os.status().processes[0]).toMatchObject({ vpasid, vrids: [] });
    expect(bed.kvmPasids()).toEqual([]);
    // Its ENQCMD still loads IA32_PASID = valid | vPASID, now unmapped: KVM answers #GP, nothing reaches the device.
    const submitted = bed.accelerator(DSA0).stats.submitted;
    expect(await os.submit(pid, vrid, { op: 'noop' })).toEqual({ result: 'gp', reason: 'vpasid-unmapped' });
    expect(bed.ia32Pasid(0)).toBe(IA32_PASID_VALID + vpasid);
    expect(bed.accelerator(DSA0).stats.submitted).toBe(submitted);
  });

  it('munmap whose IOTLB invalidation faults is EIO and quarantines the frames (never reused)', async () => {
    let host!: FailWhen<HostKernelPort>;
    const bed = await VmOnStack.start({ memoryMiB: 2, vcpus: 1, devices: [DSA0] }, { wrapHost: (port) => (host = failWhen(port)).port });
    const vrid = bed.vrid(DSA0);
    const os = new GuestOs(bed.port);
    await os.boot();
    const pid = await os.createProcess('app');
    const buf = await os.mmap(pid, 2 * 4096, true);
    const vpasid = await os.bind(pid, vrid);
    const free = os.status().frames.free;
    // The host refuses the IOTLB invalidation of this vPASID's ioasid: the vIOMMU faults the piotlb.
    const ioasid = bed.viommu.bindings().find((b) => b.vpasid === vpasid)?.ioasid;
    host.fail = (method, args) => (method === 'invalidate' && args[1] === ioasid ? 'EIO' : null);
    await expect(os.munmap(pid, buf, 2 * 4096)).rejects.toMatchObject({ errno: 'EIO' });
    expect(host.calls.filter((c) => c.injected).map((c) => c.method)).toEqual(['invalidate']);
    // The mapping is gone for the CPU, but its two frames stay allocated.
    expect(os.status().processes[0].mappings).toBe(0);
    expect(os.status().frames.free).toBe(free);
    await expect(os.readMemory(pid, buf, 1)).rejects.toMatchObject({ errno: 'EFAULT' });
    host.fail = null;
    const again = await os.mmap(pid, 2 * 4096);
    expect(again).toBe(buf + 2 * 4096);
  });
});
