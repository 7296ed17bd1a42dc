import { type BeforeApplicationShutdown, Inject, Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import type { Response } from 'express';
import { DataSource, type EntityManager } from 'typeorm';
import { KernelError } from '@app/shared/errno';
import type { ChildRow, Journal, OperationMeta } from '@app/shared/journal/journal';
import { APP_CONFIG, JOURNAL } from '@app/shared/nest/tokens';
import { newTraceId, runInTrace } from '@app/shared/trace';
import type { HostKernelConfig } from './config';
import { Kernel, type KernelEvent } from './kernel';
import { ProcessEntity, type ProcessRow } from './persistence/process.entity';

/** Pids below this look like system processes (init is 1); ours start here and are never reused. */
const FIRST_PID = 100;

/**
 * The Nest side of the kernel: owns the one `Kernel` (plain domain object), journals every call on
 * it, keeps the process table in SQLite, and routes kernel events to the owning process's lifeline.
 */
@Injectable()
export class KernelService implements OnModuleInit, BeforeApplicationShutdown {
  private readonly logger = new Logger('KernelService');
  kernel!: Kernel;
  /** Events the kernel emits while a call runs become child rows of that call's journal row. */
  private collecting: KernelEvent[] | null = null;
  private readonly lifelines = new Map<number, Response>();

  constructor(
    @Inject(APP_CONFIG) readonly config: HostKernelConfig,
    @Inject(JOURNAL) readonly journal: Journal,
    private readonly ds: DataSource,
  ) {}

  async onModuleInit(): Promise<void> {
    const rows = await this.ds.getRepository(ProcessEntity).find();
    const maxPid = rows.reduce((m, r) => Math.max(m, r.pid), 0);
    const survivors = rows.filter((r) => r.state === 'running').map((r) => r.pid);
    // A kernel restart is a reboot: no process survives it. Mark the ones the last boot left running.
    await runInTrace({ traceId: newTraceId(), spanId: null, caller: null }, () =>
      this.journal.run(
        { operation: 'kernel.boot', actor: 'kernel', args: { memoryMiB: this.config.memoryMiB, devices: this.config.devices.length } },
        () => ({ firstPid: Math.max(FIRST_PID, maxPid + 1), exitedAtBoot: survivors }),
        () =>
          survivors.length
            ? async (em) => {
                await em.getRepository(ProcessEntity).update({ state: 'running' }, { state: 'exited', exitedMs: Date.now(), exitReason: 'host-kernel restart' });
              }
            : null,
      ),
    );
    this.kernel = new Kernel({
      memoryMiB: this.config.memoryMiB,
      devices: this.config.devices,
      firstPid: Math.max(FIRST_PID, maxPid + 1),
      onEvent: (e) => this.onKernelEvent(e),
    });
  }

  /**
   * A clean shutdown kills every process first (as init does at halt), each journaled with its fds closed
   * leaf-first; their lifelines end with an exit event. A crash leaves that to the next boot.
   */
  async beforeApplicationShutdown(): Promise<void> {
    for (const pid of this.kernel.runningPids()) {
      await runInTrace({ traceId: newTraceId(), spanId: null, caller: null }, () =>
        this.exec({ operation: 'process.exit', actor: 'kernel', object: `process:${pid}`, args: { reason: 'host-kernel shutdown' } }, (k) =>
          k.killProcess(pid, 'host-kernel shutdown'),
        ),
      ).catch((err: unknown) => this.logger.error(`shutdown: process ${pid}: ${String(err)}`));
    }
    for (const res of this.lifelines.values()) res.end();
    this.lifelines.clear();
  }

  /** A process the kernel knows, or (after a reboot) the record the database kept of it. */
  async describeProcess(pid: number): Promise<ReturnType<Kernel['process']> & { exitReason?: string | null }> {
    try {
      return this.kernel.process(pid);
    } catch (err) {
      const row = await this.ds.getRepository(ProcessEntity).findOneBy({ pid });
      if (!row) throw err;
      return { pid: row.pid, comm: row.comm, state: row.state, fds: [], exitReason: row.exitReason };
    }
  }

  /** Runs one kernel call, journaled; process exits it causes are persisted in the same transaction. */
  async exec<T>(meta: OperationMeta<T>, fn: (k: Kernel) => T, persist?: (em: EntityManager, result: T) => Promise<void>): Promise<T> {
    const events: KernelEvent[] = [];
    return this.journal.run(
      meta,
      (scope) => {
        this.collecting = events;
        try {
          return fn(this.kernel);
        } finally {
          this.collecting = null;
          for (const e of events) scope.addChild(childRow(e));
        }
      },
      // Most calls change no persisted state: then the journal row is the whole transaction.
      (result) => {
        const exits = events.filter((e) => e.kind === 'process-exit');
        if (!persist && exits.length === 0) return null;
        return async (em) => {
          if (persist) await persist(em, result);
          await this.persistExits(em, exits);
        };
      },
    ).finally(() => this.deliver(events));
  }

  private async persistExits(em: EntityManager, events: KernelEvent[]): Promise<void> {
    for (const e of events)
      if (e.kind === 'process-exit' && typeof e.pid === 'number')
        await em.getRepository(ProcessEntity).update({ pid: e.pid }, { state: 'exited', exitedMs: Date.now(), exitReason: String(e.reason ?? '') });
  }

  private onKernelEvent(e: KernelEvent): void {
    if (this.collecting) {
      this.collecting.push(e);
      return;
    }
    // An event outside any call (a device fault found by the engine): journal it on its own.
    void this.journal.record(childRow(e)).catch((err: unknown) => this.logger.error(`journal: ${String(err)}`));
    this.deliver([e]);
  }

  /** Pushes events to the lifeline of the process they concern; a process exit ends its lifeline. */
  private deliver(events: KernelEvent[]): void {
    for (const e of events) {
      if (typeof e.pid !== 'number') continue;
      const res = this.lifelines.get(e.pid);
      if (!res) continue;
      if (e.kind === 'process-exit') {
        this.lifelines.delete(e.pid);
        res.write(`event: exit\ndata: ${JSON.stringify(e)}\n\n`);
        res.end();
      } else {
        res.write(`event: ${e.kind}\ndata: ${JSON.stringify(e)}\n\n`);
      }
    }
  }

  // ---- lifelines -------------------------------------------------------------------------------

  attachLifeline(pid: number, res: Response): void {
    if (this.kernel.process(pid).state !== 'running') throw new KernelError('ESRCH', `process ${pid} has exited`);
    if (this.lifelines.has(pid)) throw new KernelError('EBUSY', `process ${pid} already holds its lifeline`);
    this.lifelines.set(pid, res);
  }

  /** The stream dropped: if it was still the process's lifeline, the process is dead. */
  async lifelineDropped(pid: number, res: Response): Promise<void> {
    if (this.lifelines.get(pid) !== res) return;
    this.lifelines.delete(pid);
    await runInTrace({ traceId: newTraceId(), spanId: null, caller: null }, () =>
      this.exec({ operation: 'process.exit', actor: `pid:${pid}`, object: `process:${pid}`, args: { reason: 'lifeline dropped' } }, (k) =>
        k.killProcess(pid, 'lifeline dropped'),
      ),
    ).catch((err: unknown) => this.logger.error(`lifeline of ${pid}: ${String(err)}`));
  }

  async createProcessRow(em: EntityManager, row: ProcessRow): Promise<void> {
    await em.getRepository(ProcessEntity).insert(row);
  }
}

function childRow(e: KernelEvent): ChildRow {
  const { kind, pid, ...rest } = e as KernelEvent & Record<string, unknown>;
  return {
    operation: `event.${kind}`,
    actor: typeof pid === 'number' ? `pid:${pid}` : 'hw',
    object:
      typeof rest.ppasid === 'number'
        ? `ioasid:${rest.ppasid}`
        : typeof rest.object === 'string'
          ? rest.object
          : typeof pid === 'number'
            ? `process:${pid}`
            : null,
    args: rest,
  };
}
