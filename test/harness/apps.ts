import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

export type AppName = 'host-kernel' | 'vmm' | 'guest';

/** The repository root: the nearest folder up with nest-cli.json (this file also runs compiled, from dist/bench). */
function repoRoot(from: string): string {
  for (let dir = from; dir !== dirname(dir); dir = dirname(dir)) if (existsSync(join(dir, 'nest-cli.json'))) return dir;
  throw new Error(`no nest-cli.json above ${from}`);
}

const ROOT = repoRoot(__dirname);
export const ENTRY: Record<AppName, string> = {
  'host-kernel': join(ROOT, 'dist/apps/host-kernel/apps/host-kernel/src/main.js'),
  vmm: join(ROOT, 'dist/apps/vmm/apps/vmm/src/main.js'),
  guest: join(ROOT, 'dist/apps/guest/apps/guest/src/main.js'),
};

const TAIL_LINES = 40;
const live = new Set<AppProcess>();
/** Where every app spawned from now on writes its V8 CPU profile (`npm run bench -- --profile <dir>`), or null. */
let cpuProfileDir: string | null = null;

/**
 * Spawns every later app with `--cpu-prof` into `dir`. Node writes a profile when the process exits normally, so
 * killAll then stops the apps with SIGTERM (their graceful shutdown) before it kills what is left.
 */
export function profileApps(dir: string): void {
  cpuProfileDir = dir;
}

/** A built app running as its own process group, on a port it chose itself (PORT=0). */
export class AppProcess {
  port = 0;
  readonly stdout: string[] = [];
  readonly stderr: string[] = [];
  readonly exited: Promise<number | null>;
  private exitCode: number | null | undefined;

  constructor(
    readonly name: AppName,
    readonly child: ChildProcess,
  ) {
    live.add(this);
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        this.exitCode = code ?? (signal ? -1 : null);
        live.delete(this);
        resolve(this.exitCode);
      });
    });
    collect(child.stdout, this.stdout);
    collect(child.stderr, this.stderr);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  /** The last lines the app wrote on stderr, for failure messages. */
  tail(): string {
    return `--- ${this.name} stderr (last ${TAIL_LINES} lines) ---\n${this.stderr.slice(-TAIL_LINES).join('\n')}`;
  }

  /** Sends a signal to the whole process group. */
  signal(sig: NodeJS.Signals): void {
    if (!this.running || this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, sig);
    } catch {
      /* already gone */
    }
  }

  async stop(sig: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<number | null> {
    this.signal(sig);
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}

function collect(stream: NodeJS.ReadableStream | null, into: string[]): void {
  if (!stream) return;
  let partial = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    partial += chunk;
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    into.push(...lines);
    if (into.length > 2000) into.splice(0, into.length - 2000);
  });
}

/**
 * Spawns a built app with `node` in its own process group and waits (with a deadline, no fixed
 * sleeps) for its `READY {"app","port"}` line and then for `/health` to answer.
 */
export async function spawnApp(name: AppName, env: Record<string, string>, deadlineMs = 30_000): Promise<AppProcess> {
  const profile = cpuProfileDir === null ? [] : ['--cpu-prof', `--cpu-prof-dir=${cpuProfileDir}`];
  const child = spawn(process.execPath, [...profile, ENTRY[name]], {
    env: { PATH: process.env.PATH ?? '', PORT: '0', ...env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const app = new AppProcess(name, child);
  const deadline = Date.now() + deadlineMs;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`${name} printed no READY within ${deadlineMs} ms`)), deadlineMs);
    const fail = (err: Error): void => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      app.signal('SIGKILL');
      reject(new Error(`${err.message}\n${app.tail()}`));
    };
    const onData = (): void => {
      const line = app.stdout.find((l) => l.startsWith('READY '));
      if (!line) return;
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      app.port = (JSON.parse(line.slice(6)) as { port: number }).port;
      resolve();
    };
    child.stdout?.on('data', () => setImmediate(onData));
    void app.exited.then((code) => fail(new Error(`${name} exited with ${code} before READY`)));
  });
  while (true) {
    try {
      const res = await fetch(`${app.url}/health`);
      if (res.ok) break;
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) {
      app.signal('SIGKILL');
      throw new Error(`${name} /health did not answer in time\n${app.tail()}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return app;
}

/** Kills every app process group still alive (used at the end of every test file, pass or fail). */
export async function killAll(): Promise<void> {
  const all = [...live];
  if (cpuProfileDir !== null) await Promise.all(all.map((a) => a.stop('SIGTERM')));
  for (const app of all) app.signal('SIGKILL');
  await Promise.all(all.map((a) => a.exited));
}

export function stderrTails(): string {
  return [...live].map((a) => a.tail()).join('\n');
}

process.on('exit', () => {
  for (const app of live) app.signal('SIGKILL');
});
