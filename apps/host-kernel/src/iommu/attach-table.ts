import { KernelError } from '@app/shared/errno';
import { Tx } from '../fault-injection';
import { NO_PASID } from '../ioasid/ioasid.constants';
import { PageTableHandle } from '../ioasid/pgtbl';

interface RouteEntry {
  pgtbl: PageTableHandle;
  /** Blocked: requests on this route fault (VT-d: the PASID entry is cleared before teardown). */
  blocked: boolean;
}

interface DeviceRoutes {
  rid: RouteEntry | null;
  pasids: Map<number, RouteEntry>;
}

export interface RouteInfo {
  bdf: string;
  /** null = the RID route (requests without PASID) */
  ppasid: number | null;
  ioasid: number;
  pgtblId: number;
  blocked: boolean;
}

/**
 * The IOMMU's per-device table (the VT-d context entry + scalable-mode PASID table of each device):
 * RID and RID+PASID → page table. VFIO programs it; the data plane reads it through lookup().
 */
export class AttachTable {
  private readonly devices = new Map<string, DeviceRoutes>();
  /** The device of the last lookup (each request of a descriptor names the same one); devices are never removed. */
  private lastBdf: string | null = null;
  private lastRoutes: DeviceRoutes | undefined = undefined;
  /** The last lookup's PASID on lastBdf and its answer (a descriptor's requests share both); undefined: none. */
  private lastPpasid: number | null | undefined = undefined;
  private lastEntry: RouteEntry | null = null;

  addDevice(bdf: string): void {
    if (!this.devices.has(bdf)) this.devices.set(bdf, { rid: null, pasids: new Map() });
    this.lastBdf = null;
    this.lastPpasid = undefined;
  }

  attach(tx: Tx, bdf: string, ppasid: number | null, pgtbl: PageTableHandle): void {
    const routes = this.routesOf(bdf);
    const key = normalize(ppasid);
    if (this.entry(bdf, key)) throw new KernelError('EBUSY', `${describe(bdf, key)} is already routed`);
    tx.do(
      'iommu.attach',
      () => this.set(routes, key, { pgtbl, blocked: false }),
      () => this.set(routes, key, null),
    );
  }

  /** Make the route fault from now on (idempotent). */
  block(tx: Tx, bdf: string, ppasid: number | null): void {
    const entry = this.entry(bdf, normalize(ppasid));
    if (!entry) throw new Error(`${describe(bdf, ppasid)} has no route to block`);
    const was = entry.blocked;
    tx.do('iommu.block', () => (entry.blocked = true), () => (entry.blocked = was));
  }

  detach(tx: Tx, bdf: string, ppasid: number | null): void {
    const routes = this.routesOf(bdf);
    const key = normalize(ppasid);
    const entry = this.entry(bdf, key);
    if (!entry) throw new Error(`${describe(bdf, key)} has no route to detach`);
    tx.do(
      'iommu.detach',
      () => this.set(routes, key, null),
      () => this.set(routes, key, entry),
    );
  }

  /** The page table a request (bdf, ppasid | null) is translated with; null if no route or blocked. */
  lookup(bdf: string, ppasid: number | null): PageTableHandle | null {
    const entry = this.entry(bdf, normalize(ppasid));
    return entry && !entry.blocked ? entry.pgtbl : null;
  }

  /** The route entry itself, read-only and without a copy (the data plane's per-request lookup). */
  route(bdf: string, ppasid: number | null): Readonly<RouteEntry> | null {
    return this.entry(bdf, normalize(ppasid));
  }

  /** The route itself, blocked or not (the IOMMU tells a blocked route from a missing one). */
  find(bdf: string, ppasid: number | null): { pgtbl: PageTableHandle; blocked: boolean } | null {
    const entry = this.entry(bdf, normalize(ppasid));
    return entry && { pgtbl: entry.pgtbl, blocked: entry.blocked };
  }

  routes(): RouteInfo[] {
    const out: RouteInfo[] = [];
    for (const [bdf, r] of [...this.devices.entries()].sort(([a], [b]) => a.localeCompare(b))) {
      const info = (ppasid: number | null, e: RouteEntry): RouteInfo => ({ bdf, ppasid, ioasid: e.pgtbl.ppasid, pgtblId: e.pgtbl.id, blocked: e.blocked });
      if (r.rid) out.push(info(null, r.rid));
      for (const [ppasid, e] of [...r.pasids.entries()].sort(([a], [b]) => a - b)) out.push(info(ppasid, e));
    }
    return out;
  }

  private entry(bdf: string, ppasid: number | null): RouteEntry | null {
    let routes = this.lastRoutes;
    if (bdf !== this.lastBdf) {
      routes = this.devices.get(bdf);
      this.lastBdf = bdf;
      this.lastRoutes = routes;
      this.lastPpasid = undefined;
    } else if (ppasid === this.lastPpasid) return this.lastEntry;
    if (!routes) return null;
    const entry = ppasid === null ? routes.rid : (routes.pasids.get(ppasid) ?? null);
    this.lastPpasid = ppasid;
    this.lastEntry = entry;
    return entry;
  }

  /** Every change of a route goes through here (attach, detach, their undo), so the last answer is forgotten. */
  private set(routes: DeviceRoutes, ppasid: number | null, entry: RouteEntry | null): void {
    this.lastPpasid = undefined;
    this.lastEntry = null;
    if (ppasid === null) routes.rid = entry;
    else if (entry) routes.pasids.set(ppasid, entry);
    else routes.pasids.delete(ppasid);
  }

  private routesOf(bdf: string): DeviceRoutes {
    const routes = this.devices.get(bdf);
    if (!routes) throw new KernelError('ENODEV', `no IOMMU context for device ${bdf}`);
    return routes;
  }
}

/** PASID 0 is the RID route (requests without a PASID prefix). */
const normalize = (ppasid: number | null): number | null => (ppasid === NO_PASID ? null : ppasid);
const describe = (bdf: string, ppasid: number | null): string => (ppasid === null ? `${bdf} RID` : `${bdf} PASID ${ppasid}`);
