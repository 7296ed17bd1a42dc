// The in-process stack as a replay transport: the operator's door for requests, stack-events.ts for external
// events, the journals read directly; time travel hooks each journal's writes to stop the world right after one.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Journal, JournalEvent } from '@app/shared/journal/journal';
import { InProcessStack } from '../stack/in-process-stack';
import { advance, kill, quiesce, recordEvent, restartVmm } from '../stack/stack-events';
import { JournalReader } from './journal-reader';
import type { StackConfig } from './recording';
import type { StackRequest, StackResponse, Transport } from './transport';

interface RawHandle {
  serialize(): Buffer;
}

export class InProcessTransport implements Transport {
  readonly kind = 'in-process' as const;
  stack!: InProcessStack;
  private readonly journals = new JournalReader();
  private readonly hooked = new Set<Journal>();
  readonly backgroundAnswers: StackResponse[] = [];
  /** Bumped when an app is killed or restarted: a background answer from an earlier incarnation never arrives. */
  private readonly epochs = new Map<string, number>();

  constructor(
    readonly config: StackConfig,
    /** Told after every committed write of every journal (time travel): its last row, and its first row's seq and operation. */
    private readonly onWrite: ((journal: string, lastSeq: number, first: { seq: number; operation: string }) => void) | null = null,
  ) {}

  adminToken(app: 'host-kernel' | 'vmm'): string {
    return app === 'host-kernel' ? this.stack.hostAdminToken : this.stack.vmmAdminToken;
  }

  async start(): Promise<void> {
    const c = this.config;
    this.stack = await InProcessStack.create({ devices: c.devices, memoryMiB: c.memoryMiB, pasidQuota: c.pasidQuota, seed: c.seed ?? undefined, debugStallBefore: c.debugStallBefore });
    this.hook();
  }

  /** Hooks the journals the stack has now (a restarted VMM and a booted guest bring new ones). */
  private hook(): void {
    if (!this.onWrite) return;
    for (const [name, j] of this.stack.streams()) {
      if (this.hooked.has(j)) continue;
      this.hooked.add(j);
      j.store.afterWrite = (seq, rows) => this.onWrite?.(name, seq, { seq: seq - rows.length + 1, operation: rows[0].operation });
    }
  }

  async request(req: StackRequest & { background?: boolean; principal?: string }): Promise<StackResponse> {
    if (!req.background) return this.stack.request(req);
    await recordEvent(this.stack, { kind: 'http', app: req.app, ...(req.vm !== undefined ? { vm: req.vm } : {}), method: req.method, path: req.path, body: req.body ?? null, principal: req.principal ?? 'none' });
    // Not awaited by the caller: a request that may never be answered (the VMM stalls, then dies). If its app is
    // killed meanwhile, its answer is lost with the connection, as over REST.
    const app = req.app === 'guest' ? `guest-${req.vm}` : req.app;
    const epoch = this.epochs.get(app) ?? 0;
    const answer = (res: StackResponse): void => void ((this.epochs.get(app) ?? 0) === epoch && this.backgroundAnswers.push(res));
    void this.stack.request({ ...req, recorded: true }).then(answer, (err: unknown) => answer({ status: 599, body: { message: String(err) } }));
    return { status: 202, body: null };
  }

  async boot(vm: number, token: string, traceparent: string | null, pageRequests?: 'ignore'): Promise<void> {
    await this.stack.bootGuest({ id: vm, token }, { traceparent, ...(pageRequests ? { pageRequests } : {}) });
    this.hook();
  }

  /** The incarnation of `app` ends (a guest ends with its VMM). */
  private bump(app: string): void {
    for (const name of app === 'vmm' ? ['vmm', ...[...this.stack.guests.keys()].map((v) => `guest-${v}`)] : [app]) this.epochs.set(name, (this.epochs.get(name) ?? 0) + 1);
  }

  kill(app: 'vmm' | 'guest', vm?: number): Promise<void> {
    this.bump(app === 'guest' ? `guest-${vm}` : 'vmm');
    return kill(this.stack, app, vm);
  }

  async restart(): Promise<void> {
    this.bump('vmm');
    await restartVmm(this.stack);
    this.hook();
  }

  advance(ms: number): Promise<void> {
    return advance(this.stack, ms);
  }

  quiesce(): Promise<void> {
    return quiesce(this.stack);
  }

  newRows(): Promise<Map<string, JournalEvent[]>> {
    return this.journals.newRows(this.stack.streams());
  }

  async saveDatabases(dir: string): Promise<void> {
    for (const [name, j] of this.stack.streams()) {
      const raw = (j.store.ds.driver as unknown as { databaseConnection: RawHandle }).databaseConnection;
      writeFileSync(join(dir, `${name}.db`), raw.serialize());
    }
  }

  close(): Promise<void> {
    return this.stack.close();
  }
}
