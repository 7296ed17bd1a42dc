// What the fuzzer writes into memory: blocks that say whose they are. Every tenant writes only its own canary
// (a host process `h<pid>`, a VM `v<id>` — its guest OS and its guest kernel alike: isolation inside a guest is the
// guest's own business), so bytes any read returns name their owner; a read that returns another tenant's canary
// crossed an isolation boundary (DESIGN §11). Fresh frames read as zeros, so nothing else looks like one.

export type Owner = { kind: 'host'; pid: number } | { kind: 'vm'; vm: number };

const MAGIC = Buffer.from('FZCN', 'latin1');
/** One block: MAGIC, kind byte, id (u32 LE), ~id (u32 LE), three pad bytes. */
export const CANARY_BLOCK = 16;
const KIND = { host: 0x68, vm: 0x76 } as const;

export const ownerName = (o: Owner): string => (o.kind === 'host' ? `host process ${o.pid}` : `vm ${o.vm}`);
export const sameOwner = (a: Owner, b: Owner): boolean => (a.kind === 'host' ? b.kind === 'host' && a.pid === b.pid : b.kind === 'vm' && a.vm === b.vm);

/** `length` bytes of `owner`'s canary (whole blocks, the last one cut). */
export function canary(owner: Owner, length: number): Buffer {
  const block = Buffer.alloc(CANARY_BLOCK, 0xa5);
  MAGIC.copy(block, 0);
  block[4] = KIND[owner.kind];
  const id = owner.kind === 'host' ? owner.pid : owner.vm;
  block.writeUInt32LE(id >>> 0, 5);
  block.writeUInt32LE(~id >>> 0, 9);
  const out = Buffer.alloc(length);
  for (let off = 0; off < length; off += CANARY_BLOCK) block.copy(out, off, 0, Math.min(CANARY_BLOCK, length - off));
  return out;
}

/** The distinct owners whose canaries `data` holds (whole blocks only). */
export function canaryOwners(data: Buffer): Owner[] {
  const out = new Map<string, Owner>();
  for (let at = data.indexOf(MAGIC); at >= 0 && at + 13 <= data.length; at = data.indexOf(MAGIC, at + 1)) {
    const id = data.readUInt32LE(at + 5);
    if (data.readUInt32LE(at + 9) !== (~id >>> 0)) continue;
    const owner: Owner | null = data[at + 4] === KIND.host ? { kind: 'host', pid: id } : data[at + 4] === KIND.vm ? { kind: 'vm', vm: id } : null;
    if (owner) out.set(ownerName(owner), owner);
  }
  return [...out.values()];
}
