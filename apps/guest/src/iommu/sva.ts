// The guest vIOMMU driver: the iommu_sva_bind_device() analogue (Linux drivers/iommu/iommu-sva.c and
// intel/pasid.c). One PASID directory page per device is registered at boot; bind allocates the lowest
// free vPASID (one per process, reused across devices like mm->pasid), writes the first-level PASID entry
// {present, PGTT 1, FLPM 0, FLPTR = CR3} into the device's on-demand PASID table, and asks the vIOMMU to
// pick it up with [pasid-cache(V), wait]. A fault the VMM reports for it rolls the entry back.
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
}

interface ProcessBinding {
  pid: number;
  vpasid: number;
  /** vrid → bind count (iommu_sva_bind_device on a bound pair takes another reference) */
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
      this.contexts.set(vrid, { vrid, dirGpa, tables: new Map() });
    }
  }

  contextOf(vrid: number): { dirGpa: number; tables: Map<number, number> } | null {
    const c = this.contexts.get(vrid);
    return c ? { dirGpa: c.dirGpa, tables: new Map(c.tables) } : null;
  }

  bindings(): SvaBindingInfo[] {
    return [...this.byPid.values()].map((b) => ({ pid: b.pid, vpasid: b.vpasid, vrids: [...b.devices.keys()].sort((x, y) => x - y) }));
  }

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
      if (!existing) this.usedVpasids.delete(vpasid);
      throw err;
    }
    const b = existing ?? { pid, vpasid, devices: new Map<number, number>() };
    b.devices.set(vrid, 1);
    this.byPid.set(pid, b);
    return vpasid;
  }

  /** Drops one bind of (pid, vrid); the last one clears the entry; the vPASID is freed with the process's last device. */
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
    if (b.devices.size === 0) {
      this.byPid.delete(pid);
      this.usedVpasids.delete(b.vpasid);
    }
  }

  /** After the process's own page-table change: PASID-based IOTLB invalidation of the range, then wait. */
  async flushIotlb(pid: number, gva: number, length: number): Promise<void> {
    const b = this.byPid.get(pid);
    if (!b || b.devices.size === 0 || length <= 0) return;
    const addr = gva - (gva % PAGE_SIZE);
    const npages = Math.ceil((gva + length - addr) / PAGE_SIZE);
    // PASID-granular IOTLB invalidation names (DID, PASID), not a device: one descriptor covers every
    // device bound to this vPASID (the VMM keeps one host address space per vPASID).
    await this.port.invalidate([{ type: 'piotlb', vpasid: b.vpasid, addr, npages }, { type: 'wait' }]);
  }

  private context(vrid: number): DeviceContext {
    const c = this.contexts.get(vrid);
    if (!c) throw new KernelError('ENODEV', `no vIOMMU context for vrid 0x${Number(vrid).toString(16)}`);
    return c;
  }

  /** Lowest free vPASID ≥ 1, like the kernel's global IOMMU SVA PASID allocator (ida_alloc_range). */
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
    let table = ctx.tables.get(dirIndex);
    if (table === undefined) {
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
      table = t;
    }
    return table + pasidTableEntryOffset(vpasid);
  }

  /** [pasid-cache(V), wait]; on a fault for this entry, clear it and invalidate again (nothing half-applied). */
  private async syncEntry(vpasid: number, vrid: number, entryGpa: number): Promise<GuestFault | null> {
    let fault: GuestFault | null = null;
    try {
      const res = await this.port.invalidate([{ type: 'pasid-cache', vpasid }, { type: 'wait' }]);
      fault = res.faults.find((f) => f.vpasid === vpasid && (f.vrid === vrid || f.vrid === null)) ?? null;
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
