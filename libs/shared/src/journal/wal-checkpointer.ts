// The WAL checkpoints of an app's SQLite file, in a worker thread of their own. With SQLite's automatic
// checkpoint, the commit that crosses the threshold copies the WAL into the database and fsyncs both files on the
// event loop: the app stops for the length of two disk flushes (14 ms each on this VM), and every request of the
// stack waits behind it. Under the bench's 16 concurrent binds the host spent a tenth of its time in those
// fsyncs (kernel stacks: do_fsync → blkdev_issue_flush), and the machine's cores sat idle meanwhile.
//
// The worker opens the same file (WAL lets a second connection checkpoint beside the writer) and runs a PASSIVE
// checkpoint on a timer: it copies what no reader still needs and never blocks the writer. Durability is SQLite's
// with synchronous = NORMAL either way (a checkpoint syncs the WAL before it copies); only the thread that waits
// for the disk changes. The writer's own automatic checkpoint is turned off only once the worker runs.
//
// A checkpoint only copies; the WAL starts over from its first frame when the writer begins a transaction after a
// checkpoint has copied *every* frame. The worker's checkpoint never gets there while the app writes without pause,
// since the writer appends while the worker copies: under the bench the host's WAL grew to 2.7 GB. So once the WAL
// holds WAL_RESTART_FRAMES, the writer checkpoints itself, right after the worker's report: only the frames written
// since the worker began are left to copy, nothing can append meanwhile, and its next commit starts the WAL over
// (journal_size_limit then cuts the file back).
import { Worker } from 'node:worker_threads';

/** How often the worker checkpoints: at the bench's write rate, about as many frames as the writer's own threshold. */
export const CHECKPOINT_INTERVAL_MS = 1000;
/**
 * The writer's automatic checkpoint threshold (frames) when no worker runs. A checkpoint copies each page the WAL
 * holds once, however many commits rewrote it, and every journal commit rewrites the same few index pages: 4,000
 * frames (about 16 MiB of WAL), not the default 1,000, took a journal commit from about 112 to 94 µs here.
 */
export const WAL_AUTOCHECKPOINT_FRAMES = 4000;
/**
 * WAL frames (64 MiB at 4 KiB pages) after which the writer checkpoints what the worker left, so that the WAL
 * starts over: at the bench's write rate about once every 2–3 s, each time two disk flushes on the event loop.
 */
export const WAL_RESTART_FRAMES = 16_384;

/** The worker, as source (no file to resolve from dist, ts-jest or the replay tools' build). */
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.path, { timeout: 5000 });
db.pragma('synchronous = NORMAL');
let done = 0;
// Past restartFrames the writer checkpoints next: this one waits for its 'resume', so the writer finds it idle.
let waiting = false;
const timer = setInterval(() => {
  if (waiting) return;
  try {
    const [r] = db.pragma('wal_checkpoint(PASSIVE)');
    waiting = r.log >= workerData.restartFrames;
    parentPort.postMessage({ checkpoints: ++done, restart: waiting });
  } catch (err) {
    parentPort.postMessage({ error: String(err && err.message || err) });
  }
}, workerData.intervalMs);
parentPort.on('message', (m) => {
  if (m === 'resume') {
    waiting = false;
    return;
  }
  clearInterval(timer);
  db.close();
  parentPort.close();
});
`;

/** The writer's connection, as far as this needs it (better-sqlite3's Database). */
export interface WalWriter {
  pragma(source: string, options?: { simple?: boolean }): unknown;
  /** An open transaction (TypeORM's asynchronous ones span turns of the event loop): no checkpoint inside it. */
  readonly inTransaction: boolean;
}

export class WalCheckpointer {
  private checkpoints = 0;
  private restarts = 0;
  private lastError: string | null = null;
  private readonly exited: Promise<void>;

  private constructor(
    private readonly worker: Worker,
    private readonly writer: WalWriter,
  ) {
    // The worker decides when the WAL needs a restart (it waits for the 'resume'); the writer only carries it out.
    worker.on('message', (m: { checkpoints?: number; restart?: boolean; error?: string }) => {
      if (m.checkpoints !== undefined) this.checkpoints = m.checkpoints;
      if (m.error !== undefined) this.lastError = m.error;
      if (m.restart) {
        this.restart();
        worker.postMessage('resume');
      }
    });
    worker.on('error', (err) => (this.lastError = err.message));
    this.exited = new Promise((resolve) =>
      worker.once('exit', () => {
        // Stopped, or died on its own (it could not open the file): the writer checkpoints for itself again.
        restoreAutocheckpoint(writer);
        resolve();
      }),
    );
    // The app's exit does not wait for it: an unfinished checkpoint is one SQLite finishes at the next open.
    worker.unref();
  }

  /**
   * Starts checkpointing the WAL of the database file `path`, and turns off `writer`'s automatic checkpoint; past
   * `restartFrames` the writer checkpoints the rest itself, and its WAL file is cut back to that many pages.
   */
  static start(path: string, writer: WalWriter, intervalMs = CHECKPOINT_INTERVAL_MS, restartFrames = WAL_RESTART_FRAMES): WalCheckpointer {
    if (path === ':memory:' || path === '') throw new Error('an in-memory database has no WAL to checkpoint');
    const worker = new Worker(WORKER, { eval: true, workerData: { path, intervalMs, restartFrames, module: require.resolve('better-sqlite3') } });
    writer.pragma('wal_autocheckpoint = 0');
    writer.pragma(`journal_size_limit = ${restartFrames * Number(writer.pragma('page_size', { simple: true }))}`);
    return new WalCheckpointer(worker, writer);
  }

  /** Checkpoints run so far by the worker, and by the writer to start the WAL over; the last error (null: none). */
  get stats(): { checkpoints: number; restarts: number; lastError: string | null } {
    return { checkpoints: this.checkpoints, restarts: this.restarts, lastError: this.lastError };
  }

  /**
   * The writer's own checkpoint of what the worker left. One that finds the worker checkpointing (busy), or a
   * transaction open, leaves it to the next report.
   */
  private restart(): void {
    if (this.writer.inTransaction) return;
    try {
      const [r] = this.writer.pragma('wal_checkpoint(PASSIVE)') as Array<{ busy: number; log: number; checkpointed: number }>;
      if (r.busy === 0 && r.checkpointed === r.log) this.restarts++;
    } catch (err) {
      this.lastError = err instanceof Error ? err.message : String(err);
    }
  }

  /** Stops the timer and closes the worker's connection; the writer's automatic checkpoint is back on. */
  async stop(): Promise<void> {
    this.worker.postMessage('stop');
    await this.exited;
  }
}

function restoreAutocheckpoint(writer: WalWriter): void {
  try {
    writer.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_FRAMES}`);
  } catch {
    // the writer is closed already: nothing left to checkpoint for
  }
}
