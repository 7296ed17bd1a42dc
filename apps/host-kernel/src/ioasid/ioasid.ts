import { Tx } from '../fault-injection';
import { PageTable } from './page-tables';

export type IoasidState = 'allocated' | 'bound' | 'destroyed';

/**
 * A reference on an ioasid besides its owning fd. The ioasid layer knows holders only by key and kind;
 * a device holder brings its own revoke() (block the route + drain) so DESTROY can cut it off, and
 * detach() (DISALLOW: block → drain → remove the route → drop this reference) so closing the owning fd
 * can let go of it, without the ioasid layer knowing anything about PCI.
 */
export type Holder =
  | { kind: 'device'; key: string; bdf: string; mode: 'rid' | 'pasid'; revoke(tx: Tx): void; detach(tx: Tx): void }
  | { kind: 'kvm'; key: string; vmFd: number; vpasid: number }
  | { kind: 'child'; key: string; ioasid: number };

/**
 * Who opened the ioasid fd that allocated it (kept after the fd closes, for audits): one frozen object per fd,
 * which every ioasid allocated through it points at.
 */
export interface IoasidOwner {
  ctxId: number;
  pid: number;
  fd: number;
}

export interface IoasidHolders {
  /** "bdf/rid" or "bdf/pasid" */
  devices: string[];
  kvm: { vmFd: number; vpasid: number }[];
  children: number[];
}

/**
 * An I/O address space whose id is its pPASID. References = the owning fd (until DESTROY or close)
 * + every holder; the pPASID goes back to the pool when a destroyed ioasid's last holder lets go.
 */
export class Ioasid {
  state: IoasidState = 'allocated';
  pgtbl: PageTable | null = null;
  /** The ioasid a nested table sits on (this one holds a 'child' reference on it). */
  parent: Ioasid | null = null;
  /** Holders by key, created on the first one (most ioasids never have a holder: no empty Map per ioasid). */
  private held: Map<string, Holder> | null = null;
  /** Its fd's list of live ioasids (FdIoasids in ioasid-context.ts): two links, not a map entry per ioasid. */
  fdPrev: Ioasid | null = null;
  fdNext: Ioasid | null = null;

  constructor(
    readonly id: number,
    readonly owner: IoasidOwner,
  ) {}

  /** The kref: 1 for the owning fd while not destroyed, plus one per holder. */
  get refs(): number {
    return (this.state === 'destroyed' ? 0 : 1) + this.holderCount;
  }

  get holderCount(): number {
    return this.held === null ? 0 : this.held.size;
  }

  holder(key: string): Holder | undefined {
    return this.held?.get(key);
  }

  addHolder(holder: Holder): void {
    (this.held ??= new Map()).set(holder.key, holder);
  }

  /** Drops a holder; the map goes with the last one. */
  removeHolder(key: string): void {
    if (this.held?.delete(key) && this.held.size === 0) this.held = null;
  }

  /** Every holder, in the order they took their reference. */
  holders(): Iterable<Holder> {
    return this.held === null ? [] : this.held.values();
  }

  hasHolder(kind: Holder['kind']): boolean {
    for (const h of this.holders()) if (h.kind === kind) return true;
    return false;
  }

  describeHolders(): IoasidHolders {
    const out: IoasidHolders = { devices: [], kvm: [], children: [] };
    for (const h of this.holders()) {
      if (h.kind === 'device') out.devices.push(`${h.bdf}/${h.mode}`);
      else if (h.kind === 'kvm') out.kvm.push({ vmFd: h.vmFd, vpasid: h.vpasid });
      else out.children.push(h.ioasid);
    }
    out.devices.sort();
    out.kvm.sort((a, b) => a.vmFd - b.vmFd || a.vpasid - b.vpasid);
    out.children.sort((a, b) => a - b);
    return out;
  }
}

/** Holder key of the reference a nested ioasid holds on its parent. */
export const childKey = (ioasid: number): string => `child:${ioasid}`;
