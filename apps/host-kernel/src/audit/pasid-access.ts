// "Who had access to pPASID P, from when to when" (DESIGN §6), derived from the host journal alone.
// A PASID is recycled, so its history is a list of epochs (ALLOC … freed); within one, access is a
// list of holder intervals: a device route (ALLOW … DISALLOW) or a KVM vPASID entry (MAP_PASID …
// UNMAP_PASID). DESTROY ends every access at once (routes blocked, KVM entries stop translating),
// even though the holders keep their references until they let go.
import type { HostEvent, HostOperation } from '@app/shared/contract/operations';
import type { Journal, JournalEvent } from '@app/shared/journal/journal';
import { allJournalEvents } from '@app/shared/journal/journal-pages';

export interface AccessInterval {
  holder: string;
  kind: 'device' | 'kvm';
  /** Who made the holder (pid:N). */
  by: string;
  from: string;
  to: string | null;
  fromSeq: number;
  toSeq: number | null;
  /** What ended it: the call, or `destroy` / `freed` / `exit`; null while it lasts. */
  endedBy: string | null;
}

export interface PasidEpoch {
  pasid: number;
  owner: string;
  allocatedAt: string;
  allocatedSeq: number;
  pgtbl: string | null;
  destroyedAt: string | null;
  freedAt: string | null;
  access: AccessInterval[];
}

interface Open {
  interval: AccessInterval;
  key: string;
}

const iso = (ms: number): string => new Date(ms).toISOString();

/**
 * Folds the host journal rows about `ioasid:P`, plus the `fd.close` rows of the processes involved, into
 * epochs. `deviceOf(actor, fd, seq)` names the device behind a VFIO fd at that row (from the `vfio.open` rows).
 */
export function pasidAccess(pasid: number, rows: JournalEvent[], deviceOf: (actor: string, fd: number, seq: number) => string | null): PasidEpoch[] {
  const epochs: PasidEpoch[] = [];
  let epoch: PasidEpoch | null = null;
  let open: Open[] = [];
  const close = (at: JournalEvent, endedBy: string, match: (o: Open) => boolean): void => {
    for (const o of open.filter(match)) {
      o.interval.to = iso(at.wallMs);
      o.interval.toSeq = at.seq;
      o.interval.endedBy = endedBy;
    }
    open = open.filter((o) => !match(o));
  };
  const start = (at: JournalEvent, kind: AccessInterval['kind'], holder: string, key: string): void => {
    const interval: AccessInterval = { holder, kind, by: at.actor, from: iso(at.wallMs), to: null, fromSeq: at.seq, toSeq: null, endedBy: null };
    epoch?.access.push(interval);
    open.push({ interval, key });
  };
  for (const row of [...rows].sort((a, b) => a.seq - b.seq)) {
    if (row.errno !== null) continue;
    const args = (row.args ?? {}) as Record<string, unknown>;
    const op = row.operation as HostOperation | HostEvent;
    if (op === 'ioasid.alloc') {
      epoch = { pasid, owner: row.actor, allocatedAt: iso(row.wallMs), allocatedSeq: row.seq, pgtbl: null, destroyedAt: null, freedAt: null, access: [] };
      epochs.push(epoch);
      open = [];
      continue;
    }
    if (!epoch) continue; // rows from before the journal saw this PASID allocated
    switch (op) {
      case 'ioasid.bind_pgtbl':
        epoch.pgtbl = String(args.kind);
        break;
      case 'vfio.allow_ioasid': {
        const fd = Number(args.deviceFd);
        start(row, 'device', `device ${deviceOf(row.actor, fd, row.seq) ?? `fd ${fd}`} (${String(args.mode)})`, `device:${row.actor}:${fd}`);
        break;
      }
      case 'vfio.disallow_ioasid':
        close(row, 'vfio.disallow_ioasid', (o) => o.key === `device:${row.actor}:${Number(args.deviceFd)}`);
        break;
      case 'kvm.map_pasid':
        start(row, 'kvm', `kvm vm fd ${Number(args.vmFd)}: vPASID ${Number(args.vpasid)}`, `kvm:${row.actor}:${Number(args.vmFd)}:${Number(args.vpasid)}`);
        break;
      case 'kvm.unmap_pasid':
        close(row, 'kvm.unmap_pasid', (o) => o.key === `kvm:${row.actor}:${Number(args.vmFd)}:${Number(args.vpasid)}`);
        break;
      case 'fd.close': {
        // close(fd) of a device fd removes its routes; of a VM fd, its vPASID entries.
        const fd = Number(args.fd);
        close(row, 'fd.close', (o) => o.key === `device:${row.actor}:${fd}` || o.key.startsWith(`kvm:${row.actor}:${fd}:`));
        break;
      }
      case 'ioasid.destroy':
      case 'event.ioasid-destroyed':
        epoch.destroyedAt ??= iso(row.wallMs);
        close(row, 'destroy', () => true);
        break;
      case 'event.ioasid-freed':
        epoch.freedAt = iso(row.wallMs);
        close(row, 'freed', () => true);
        epoch = null;
        break;
      default:
        break;
    }
  }
  return epochs;
}

/**
 * The epochs of host PASID P from the whole journal: every row about `ioasid:P`, and the `vfio.open` and
 * `fd.close` rows of each process involved, read page by page to the end (DESIGN §6: never stop at a row limit).
 */
export async function readPasidAccess(journal: Pick<Journal, 'events'>, pasid: number): Promise<PasidEpoch[]> {
  const rows = await allJournalEvents(journal, { object: `ioasid:${pasid}` });
  const actors = [...new Set(rows.map((r) => r.actor).filter((a) => a.startsWith('pid:')))];
  const opened: JournalEvent[] = [];
  const closes: JournalEvent[] = [];
  for (const actor of actors) {
    for (const r of await allJournalEvents(journal, { actor, operation: 'vfio.open' })) opened.push(r);
    for (const r of await allJournalEvents(journal, { actor, operation: 'fd.close' })) closes.push(r);
  }
  // An fd number is reused after close: the device behind (actor, fd) is the latest open before the row.
  const deviceOf = (actor: string, fd: number, beforeSeq: number): string | null => {
    const hit = opened
      .filter((r) => r.actor === actor && r.errno === null && (r.result as { fd?: number } | null)?.fd === fd && r.seq < beforeSeq)
      .at(-1);
    return hit?.object?.replace(/^device:/, '') ?? null;
  };
  return pasidAccess(pasid, [...rows, ...closes], deviceOf);
}
