// The guest vIOMMU driver: the iommu_sva_bind_device() analogue (Linux drivers/iommu/iommu-sva.c and
// intel/pasid.c). One PASID directory page per device is registered at boot; bind allocates the lowest
// free vPASID (one per process, reused across devices like mm->pasid), writes the first-level PASID entry
// {present, PGTT 1, FLPM 0, FLPTR = CR3} into the device's on-demand PASID table, and asks the vIOMMU to
// pick it up with [pasid-cache(V), wait]. A refusal of the entry the VMM reports rolls it back.
//
// vPASID lifetime follows Linux's mm->pasid (iommu_sva_bind_device / mm_pasid_drop): a process keeps its
// vPASID from its first successful bind until the process exits. Unbind drops the device binding and
// clears the PASID entry but never frees the vPASID, so a vPASID is never handed to another process while
// its old owner may still load it into IA32_PASID and ENQCMD (it then gets #GP: KVM finds it unmapped).
// The guest has no process exit yet, so within one guest boot a vPASID is never reused.
import { isDmaFault } from '@app/shared/contract/vmm';
import { KernelError } from '@app/shared/errno';
import {
  encodePasidDirEntry,
  encodePasidEntry,
  PASID_ENTRY_SIZE,
  pasidDirEntryOffset,
  pasidTableEntryOffset,
  Pgtt,
} from '@app/shared/vtd/pasid-entry';
import { FrameAllocator } from '../mm/frame-allocator';
import type { GuestMm } from '../mm/guest-mm';
import { PAGE_SIZE } from '../mm/mm.constants';
import type { GuestFault, VmmPort } from '../vmm.port';
import { GUEST_VPASID_LIMIT, GUEST_VPASID_MIN } from './iommu.constants';

interface DeviceContext {
  vrid: number;
  dirGpa: number;
  /** directory index → PASID table GPA */
  tables: Map<number, number>;
  /** directory index → the table being linked now (binds of different processes run side by side) */
  linking: Map<number, Promise<number>>;
}

interface ProcessBinding {
  pid: number;
  /** The process's vPASID for its lifetime (mm->pasid), kept when its last device is unbound. */
  vpasid: number;
  /** vrid → bind count (iommu_sva_bind_device on a bound pair takes another reference); may be empty */
  devices: Map<number, number>;
}

export interface SvaBindingInfo {
  pid: number;
  vpasid: number;
  vrids: number[];
}

export class SvaDriver {
  private readonly contexts = new Map<number, DeviceContext>();
  private readonly byPid = new Map<number, ProcessBinding>();
  private readonly usedVpasids = new Set<number>();

  constructor(
    private readonly port: Pick<VmmPort, 'writeMemory' | 'setContext' | 'invalidate'>,
    private readonly frames: FrameAllocator,
    private readonly mm: GuestMm,
  ) {}

  /** Allocates and registers a zeroed PASID directory for each device. */
  async boot(vrids: number[]): Promise<void> {
    for (const vrid of vrids) {
      if (this.contexts.has(vrid)) continue;
      const dirGpa = this.frames.alloc();
      try {
        await this.port.writeMemory(dirGpa, Buffer.alloc(PAGE_SIZE));
        await this.port.setContext(vrid, dirGpa);
      } catch (err) {
        this.frames.free(dirGpa);
        throw err;
      }
      this.contexts.set(vrid, { vrid, dirGpa, tables: new Map(), linking: new Map() });
    }
  }

  contextOf(vrid: number): { dirGpa: number; tables: Map<number, number> } | null {
    const c = this.contexts.get(vrid);
    return c ? { dirGpa: c.dirGpa, tables: new Map(c.tables) } : null;
  }

  /** Processes bound to at least one device. */
  bindings(): SvaBindingInfo[] {
    return [...this.byPid.values()]
      .filter((b) => b.devices.size > 0)
      .map((b) => ({ pid: b.pid, vpasid: b.vpasid, vrids: [...b.devices.keys()].sort((x, y) => x - y) }));
  }

  /** The process bound with `vpasid` and the devices it is bound to (null: nobody is bound with it now). */
  ownerOf(vpasid: number): { pid: number; vrids: number[] } | null {
    for (const b of this.byPid.values()) if (b.vpasid === vpasid && b.devices.size > 0) return { pid: b.pid, vrids: [...b.devices.keys()] };
    return null;
  }

  /** The process's vPASID (mm->pasid): set by its first successful bind, kept after unbind. */
  vpasidOf(pid: number): number | null {
    return this.byPid.get(pid)?.vpasid ?? null;
  }

  /** Returns the process's vPASID, now authorized on `vrid`. */
  async bind(pid: number, vrid: number): Promise<number> {
    const proc = this.mm.process(pid);
    const ctx = this.context(vrid);
    const existing = this.byPid.get(pid);
    const users = existing?.devices.get(vrid);
    if (existing && users !== undefined) {
      existing.devices.set(vrid, users + 1);
      return existing.vpasid;
    }
    const vpasid = existing?.vpasid ?? this.allocVpasid();
    try {
      const entryGpa = await this.entryGpa(ctx, vpasid);
      await this.port.writeMemory(entryGpa, encodePasidEntry({ present: true, pgtt: Pgtt.FirstLevel, flpm: 0, flptr: proc.cr3 }));
      const fault = await this.syncEntry(vpasid, vrid, entryGpa);
      if (fault) throw new KernelError(fault.errno, `vIOMMU refused vPASID ${vpasid} on vrid 0x${vrid.toString(16)}: ${fault.reason}`);
    } catch (err) {
      // A vPASID first allocated by this bind was never published (vpasidOf could not return it, so no
      // ENQCMD can carry it): it goes back. One the process already owned stays with it.
      if (!existing) this.usedVpasids.delete(vpasid);
      throw err;
    }
    const b = existing ?? { pid, vpasid, devices: new Map<number, number>() };
    b.devices.set(vrid, 1);
    this.byPid.set(pid, b);
    return vpasid;
  }

  /** Drops one bind of (pid, vrid); the last one clears the entry. The process keeps its vPASID (see the top). */
  async unbind(pid: number, vrid: number): Promise<void> {
    const b = this.byPid.get(pid);
    const users = b?.devices.get(vrid);
    if (!b || users === undefined) throw new KernelError('ENOENT', `process ${pid} is not bound to vrid 0x${Number(vrid).toString(16)}`);
    if (users > 1) {
      b.devices.set(vrid, users - 1);
      return;
    }
    const ctx = this.context(vrid);
    const entryGpa = await this.entryGpa(ctx, b.vpasid);
    await this.port.writeMemory(entryGpa, Buffer.alloc(PASID_ENTRY_SIZE));
    await this.port.invalidate([{ type: 'pasid-cache', vpasid: b.vpasid }, { type: 'wait' }]);
    b.devices.delete(vrid);
    // No vPASID free here: only the exit of the process (not modelled yet) would release it.
  }

  /**
   * After the process's own page-table change: PASID-based IOTLB invalidation of the range, then wait.
   * EIO when the vIOMMU reports a fault for it: the device may still hold the old translation, so the
   * caller must not reuse what it pointed at.
   */
  async flushIotlb(pid: number, gva: number, length: number): Promise<void> {
    const b = this.byPid.get(pid);
    if (!b || b.devices.size === 0 || length <= 0) return;
    const addr = gva - (gva % PAGE_SIZE);
    const npages = Math.ceil((gva + length - addr) / PAGE_SIZE);
    // PASID-granular IOTLB invalidation names (DID, PASID), not a device: one descriptor covers every
    // device bound to this vPASID (the VMM keeps one host address space per vPASID).
    const res = await this.port.invalidate([{ type: 'piotlb', vpasid: b.vpasid, addr, npages }, { type: 'wait' }]);
    // A DMA fault record of this vPASID that happened to land during the batch says nothing about the flush.
    const fault = res.faults.find((f) => f.vpasid === b.vpasid && !isDmaFault(f));
    if (fault) {
      throw new KernelError('EIO', `vIOMMU did not invalidate the IOTLB of vPASID ${b.vpasid} (${fault.errno}: ${fault.reason})`);
    }
  }

  private context(vrid: number): DeviceContext {
    const c = this.contexts.get(vrid);
    if (!c) throw new KernelError('ENODEV', `no vIOMMU context for vrid 0x${Number(vrid).toString(16)}`);
    return c;
  }

  /** Lowest free vPASID ≥ 1, like the kernel's global IOMMU SVA PASID allocator (ida_alloc_range). Never a vPASID a process still owns. */
  private allocVpasid(): number {
    for (let v = GUEST_VPASID_MIN; v < GUEST_VPASID_LIMIT; v++) {
      if (!this.usedVpasids.has(v)) {
        this.usedVpasids.add(v);
        return v;
      }
    }
    throw new KernelError('ENOSPC', `all ${GUEST_VPASID_LIMIT - 1} vPASIDs are in use`);
  }

  /** GPA of vpasid's entry in the device's PASID table, allocating and linking the table on first use. */
  private async entryGpa(ctx: DeviceContext, vpasid: number): Promise<number> {
    const dirIndex = pasidDirEntryOffset(vpasid) / 8;
    const table = ctx.tables.get(dirIndex) ?? (await this.linkTable(ctx, dirIndex, vpasid));
    return table + pasidTableEntryOffset(vpasid);
  }

  /**
   * Allocates, zeroes and links the PASID table of directory entry `dirIndex`, once: binds of two processes hold
   * different locks, so the second to ask waits for the first one's table instead of linking another over it.
   */
  private linkTable(ctx: DeviceContext, dirIndex: number, vpasid: number): Promise<number> {
    const under = ctx.linking.get(dirIndex);
    if (under) return under;
    const linked = (async () => {
      const t = this.frames.alloc();
      try {
        // Zero the table before the directory entry makes it reachable.
        await this.port.writeMemory(t, Buffer.alloc(PAGE_SIZE));
        const de = Buffer.alloc(8);
        de.writeBigUInt64LE(encodePasidDirEntry({ present: true, tableGpa: t }));
        await this.port.writeMemory(ctx.dirGpa + pasidDirEntryOffset(vpasid), de);
      } catch (err) {
        this.frames.free(t);
        throw err;
      }
      ctx.tables.set(dirIndex, t);
      return t;
    })();
    ctx.linking.set(dirIndex, linked);
    const forget = (): void => void ctx.linking.delete(dirIndex);
    linked.then(forget, forget);
    return linked;
  }


  /** [pasid-cache(V), wait]; on a fault for this entry, clear it and invalidate again (nothing half-applied). */
  private async syncEntry(vpasid: number, vrid: number, entryGpa: number): Promise<GuestFault | null> {
    let fault: GuestFault | null = null;
    try {
      const res = await this.port.invalidate([{ type: 'pasid-cache', vpasid }, { type: 'wait' }]);
      // Only a refusal of the entry refuses the bind: a DMA fault of this vPASID that landed during the batch (a
      // submission racing the bind on this device) is a record of that access, not of the entry.
      fault = res.faults.find((f) => !isDmaFault(f) && f.vpasid === vpasid && (f.vrid === vrid || f.vrid === null)) ?? null;
    } catch (err) {
      await this.rollback(vpasid, entryGpa);
      throw err;
    }
    if (fault) await this.rollback(vpasid, entryGpa);
    return fault;
  }

  private async rollback(vpasid: number, entryGpa: number): Promise<void> {
    await this.port.writeMemory(entryGpa, Buffer.alloc(PASID_ENTRY_SIZE));
    await this.port.invalidate([{ type: 'pasid-cache', vpasid }, { type: 'wait' }]);
  }
}
