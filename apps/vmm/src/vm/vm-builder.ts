// Builds a VM on the host for real (DESIGN §3): host process → guest RAM → KVM VM, memslot, vCPUs →
// ioasid fd, the VM's fault queue (DESIGN §10), GPA ioasid (iova) mapping all RAM at iova = GPA → each device opened and allowed the GPA
// ioasid on its RID → PASID translation on. Progress is recorded in VmHandles as it happens; a failure
// unwinds exactly what the handles say was done, in reverse, and rethrows. teardown() is the same unwind
// on a finished VM, after every vIOMMU binding is gone (UNMAP_PASID, DISALLOW, DESTROY per vPASID).
import { KernelError } from '@app/shared/errno';
import { GuestRam } from '@app/shared/memory/guest-ram';
import { type MemFile, releaseMemFile } from '@app/shared/memory/mem-file';
import type { HostKernelPort } from '../host-kernel.port';
import { describeMachine, Machine, MachineSpec, ramBytes } from '../machine/machine';
import { Viommu } from '../viommu/viommu';

export interface VmSpec extends MachineSpec {
  name: string;
  /** Per-VM budget of bound vPASIDs (vIOMMU default otherwise). */
  pasidQuota?: number;
  /** Requests the guest page request queue holds (vIOMMU default otherwise). */
  prqDepth?: number;
}

export interface DeviceHandles {
  vrid: number;
  bdf: string;
  pasidWidth: number;
  deviceFd?: number;
  /** The GPA ioasid is allowed on the device's RID. */
  ridAllowed?: boolean;
}

/** Host objects a VM holds; optional fields are filled as the build gets to them. */
export interface VmHandles {
  pid?: number;
  token?: string;
  ramHva?: number;
  vmFd?: number;
  memslot?: boolean;
  vcpus: number[];
  ioasidFd?: number;
  /** The VM's host fault queue on ioasidFd: every nested vPASID table sends its page requests there. */
  faultQueue?: number;
  gpaIoasid?: number;
  gpaMapped?: boolean;
  devices: DeviceHandles[];
  pasidTranslation?: boolean;
}

export interface Vm {
  name: string;
  machine: Machine;
  ramBytes: number;
  /** The host kernel acting as this VM's own host process. */
  port: HostKernelPort;
  handles: VmHandles & { pid: number; token: string; ramHva: number; vmFd: number; ioasidFd: number; faultQueue: number; gpaIoasid: number };
  viommu: Viommu;
  /** Guest RAM as the VMM maps it: the memory file behind the host mapping at ramHva (QEMU's RAM block). */
  ram: GuestRam;
  /** That file's name: handed to the VM's guest only (GET /v1/vms/:id/ram), never journaled. */
  ramFile: string;
}

/** Undoes whatever `h` records, newest first; keeps going past failures (process death closes the rest). */
export async function unwindHandles(port: HostKernelPort, h: VmHandles): Promise<KernelError[]> {
  const errors: KernelError[] = [];
  const step = async (run: () => Promise<unknown>): Promise<void> => {
    try {
      await run();
    } catch (err) {
      errors.push(err instanceof KernelError ? err : new KernelError('EIO', String(err)));
    }
  };
  if (h.pasidTranslation && h.vmFd !== undefined) await step(() => port.setPasidTranslation(h.vmFd as number, false));
  for (const d of [...h.devices].reverse()) {
    if (d.ridAllowed && d.deviceFd !== undefined) {
      await step(() => port.disallowIoasid(d.deviceFd as number, { ioasidFd: h.ioasidFd as number, ioasid: h.gpaIoasid as number }));
    }
    if (d.deviceFd !== undefined) await step(() => port.closeFd(d.deviceFd as number));
  }
  if (h.gpaMapped) await step(() => port.unmap(h.ioasidFd as number, h.gpaIoasid as number, { all: true }));
  if (h.gpaIoasid !== undefined) await step(() => port.destroy(h.ioasidFd as number, h.gpaIoasid as number));
  if (h.faultQueue !== undefined) await step(() => port.destroyFaultQueue(h.ioasidFd as number, h.faultQueue as number));
  if (h.ioasidFd !== undefined) await step(() => port.closeFd(h.ioasidFd as number));
  // Memslots and vCPUs belong to the VM fd and go with it (KVM has no separate destroy for them).
  if (h.vmFd !== undefined) await step(() => port.closeFd(h.vmFd as number));
  // Guest RAM is process memory: it goes with the process.
  if (h.pid !== undefined) await step(() => port.killProcess(h.pid as number));
  return errors;
}

export class VmBuilder {
  /** `hostKernel` is unbound; each VM gets its own process and a port bound to its token. */
  constructor(private readonly hostKernel: HostKernelPort) {}

  /**
   * `attach` runs right after the host process exists, before anything else is built: the VMM holds the
   * process's lifeline from there on, so a VMM that dies mid-build leaves nothing behind on the host.
   */
  async build(spec: VmSpec, attach?: (pid: number, token: string) => Promise<void>): Promise<Vm> {
    const machine = describeMachine(spec);
    const bytes = ramBytes(machine);
    const h: VmHandles = { vcpus: [], devices: [] };
    let port = this.hostKernel;
    let ram: MemFile | null = null;
    try {
      const proc = await this.hostKernel.createProcess(`vmm/${spec.name}`);
      port = this.hostKernel.as(proc.token);
      h.pid = proc.pid;
      h.token = proc.token;
      await attach?.(proc.pid, proc.token);
      // Guest RAM is a shared mapping: the host backs it with a memory file that this process maps too.
      const mapped = await port.mmapShared(proc.pid, bytes);
      h.ramHva = mapped.hva;
      ram = mapped.file;
      h.vmFd = await port.createVm();
      await port.addMemslot(h.vmFd, { gpa: 0, size: bytes, hva: h.ramHva });
      h.memslot = true;
      for (let i = 0; i < machine.vcpus; i++) h.vcpus.push(await port.createVcpu(h.vmFd));
      h.ioasidFd = await port.openIoasid();
      h.faultQueue = await port.createFaultQueue(h.ioasidFd);
      h.gpaIoasid = await port.alloc(h.ioasidFd);
      await port.bindPgtbl(h.ioasidFd, h.gpaIoasid, { kind: 'iova' });
      await port.map(h.ioasidFd, h.gpaIoasid, { iova: 0, hva: h.ramHva, length: bytes, read: true, write: true });
      h.gpaMapped = true;
      const hostDevices = machine.devices.length > 0 ? await port.listDevices() : [];
      for (const dev of machine.devices) {
        const info = hostDevices.find((d) => d.bdf === dev.bdf);
        if (!info) throw new KernelError('ENODEV', `host has no device ${dev.bdf}`);
        const d: DeviceHandles = { vrid: dev.vrid, bdf: dev.bdf, pasidWidth: info.pasidWidth };
        h.devices.push(d);
        d.deviceFd = await port.openDevice(dev.bdf);
        await port.allowIoasid(d.deviceFd, { ioasidFd: h.ioasidFd, ioasid: h.gpaIoasid, mode: 'rid' });
        d.ridAllowed = true;
      }
      await port.setPasidTranslation(h.vmFd, true);
      h.pasidTranslation = true;
    } catch (err) {
      await unwindHandles(port, h);
      if (ram) releaseMemFile(ram.name);
      throw err;
    }
    const handles = h as Vm['handles'];
    const guestRam = new GuestRam((ram as MemFile).bytes);
    const viommu = new Viommu(port, {
      vmFd: handles.vmFd,
      ioasidFd: handles.ioasidFd,
      gpaIoasid: handles.gpaIoasid,
      faultQueue: handles.faultQueue,
      ramBytes: bytes,
      ram: guestRam,
      devices: h.devices.map((d) => ({ vrid: d.vrid, bdf: d.bdf, deviceFd: d.deviceFd as number, pasidWidth: d.pasidWidth })),
      pasidQuota: spec.pasidQuota,
      prqDepth: spec.prqDepth,
    });
    return { name: spec.name, machine, ramBytes: bytes, port, handles, viommu, ram: guestRam, ramFile: (ram as MemFile).name };
  }

  /** Every vIOMMU binding first, then the build in reverse, finally the host process. Returns what failed on the way. */
  async teardown(vm: Vm): Promise<KernelError[]> {
    const errors = await vm.viommu.releaseAll();
    errors.push(...(await unwindHandles(vm.port, vm.handles)));
    // The host unlinked the file with the process; this is the VMM's munmap of it.
    releaseMemFile(vm.ramFile);
    return errors;
  }
}
