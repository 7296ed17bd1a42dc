// The crash-test knob of the apps that call another app through a port (the VMM's HostKernelPort, the guest's
// VmmPort), like iommufd's fail_nth through debugfs: DEBUG_STALL_BEFORE names the calls that hang before they
// reach the other app, so a harness can SIGKILL a process at exactly that point of a sequence; DEBUG_CALL_TRACE
// prints every call the port makes, so the harness learns the steps of a sequence from a clean run of the real
// code instead of a hand-kept list. A stalled call goes on when the knob is released (SIGUSR2 in the apps), so
// a harness can also kill the *other* side while one is stalled, then let the call finish.
//
// A stall point: `[<trace id>/]<method>[#<n>]` — every call of `method`; or its n-th call (1-based, counted
// since the process started); or, with a trace id, its n-th call in that trace (the calls a request caused,
// whatever ran before it). Several points are separated by commas.
import { currentTrace } from '../trace';

export interface StallPoint {
  method: string;
  /** The n-th call (1-based); null: every call. */
  nth: number | null;
  /** Count in this trace only. */
  traceId: string | null;
}

/** One call through a wrapped port, as DEBUG_CALL_TRACE prints it. */
export interface PortCall {
  port: string;
  method: string;
  /** Calls of `method` since the process started, this one included. */
  nth: number;
  traceId: string | null;
  /** Calls of `method` in `traceId`, this one included. */
  nthInTrace: number;
  /** The call answers a promise (a step a stall point can name); false for a sync one (a lifeline held). */
  async: boolean;
}

const POINT = /^(?:([0-9a-f]{32})\/)?([A-Za-z_$][\w$]*)(?:#([1-9]\d{0,8}))?$/;

/** Parses DEBUG_STALL_BEFORE (empty or absent: no stall point). */
export function parseStallPoints(text: string | null | undefined): StallPoint[] {
  if (!text) return [];
  return text.split(',').map((raw) => {
    const m = POINT.exec(raw.trim());
    if (!m) throw new Error(`DEBUG_STALL_BEFORE entry "${raw}" is not [<trace id>/]<method>[#<n>]`);
    return { method: m[2], nth: m[3] ? Number(m[3]) : null, traceId: m[1] ?? null };
  });
}

export interface StallHooks {
  /** Every call, once it is made (before its answer comes), or when it stalls. */
  onCall?: (call: PortCall) => void;
  /** A call that now hangs until `release()`. */
  onStall?: (call: PortCall) => void;
}

export class StallKnob {
  private readonly counts = new Map<string, number>();
  private readonly traceCounts = new Map<string, number>();
  private waiting: Array<() => void> = [];

  constructor(
    private readonly port: string,
    private readonly points: StallPoint[],
    private readonly hooks: StallHooks = {},
  ) {}

  /** True when the knob does anything (a wrapped port is then a proxy; otherwise the port itself). */
  get active(): boolean {
    return this.points.length > 0 || this.hooks.onCall !== undefined;
  }

  /** Calls hanging now. */
  get stalled(): number {
    return this.waiting.length;
  }

  /**
   * The port with every method counted and checked against the stall points. Methods named in `rebind` return
   * the same port acting for someone else (HostKernelPort.as): their result is wrapped too, counted together.
   */
  wrap<T extends object>(port: T, rebind: readonly string[] = []): T {
    if (!this.active) return port;
    return new Proxy(port, {
      get: (target, prop, receiver) => {
        const value = Reflect.get(target, prop, receiver) as unknown;
        if (typeof prop !== 'string' || typeof value !== 'function') return value;
        const fn = value as (...args: unknown[]) => unknown;
        if (rebind.includes(prop)) return (...args: unknown[]) => this.wrap(fn.apply(target, args) as object, rebind);
        return (...args: unknown[]) => this.call(prop, () => fn.apply(target, args));
      },
    });
  }

  /** Lets every stalled call go on; returns how many there were. */
  release(): number {
    const go = this.waiting;
    this.waiting = [];
    for (const resume of go) resume();
    return go.length;
  }

  private call(method: string, run: () => unknown): unknown {
    const traceId = currentTrace()?.traceId ?? null;
    const nth = (this.counts.get(method) ?? 0) + 1;
    this.counts.set(method, nth);
    const key = `${traceId}/${method}`;
    const nthInTrace = (this.traceCounts.get(key) ?? 0) + 1;
    this.traceCounts.set(key, nthInTrace);
    const hit = this.points.some(
      (p) => p.method === method && (p.traceId === null || p.traceId === traceId) && (p.nth === null || p.nth === (p.traceId === null ? nth : nthInTrace)),
    );
    if (!hit) {
      const out = run();
      this.hooks.onCall?.({ port: this.port, method, nth, traceId, nthInTrace, async: out instanceof Promise });
      return out;
    }
    // A stall point names a call that answers a promise: it now answers one that waits for release().
    const call: PortCall = { port: this.port, method, nth, traceId, nthInTrace, async: true };
    this.hooks.onCall?.(call);
    this.hooks.onStall?.(call);
    return new Promise<void>((resume) => this.waiting.push(resume)).then(run);
  }
}

/**
 * The knob of an app process, from its configuration: `STALLED {...}` on stdout when a call hangs and, with
 * `traceCalls`, `CALL {...}` for every call (stdout carries the lines a supervisor reads, as READY); SIGUSR2
 * releases what hangs. Null when neither is asked for.
 */
export function processStallKnob(port: string, opts: { stallBefore: string | null; traceCalls: boolean }): StallKnob | null {
  const points = parseStallPoints(opts.stallBefore);
  if (points.length === 0 && !opts.traceCalls) return null;
  const line = (tag: string, call: PortCall): void => void process.stdout.write(`${tag} ${JSON.stringify(call)}\n`);
  const knob = new StallKnob(port, points, {
    onCall: opts.traceCalls ? (c) => line('CALL', c) : undefined,
    onStall: (c) => line('STALLED', c),
  });
  process.on('SIGUSR2', () => {
    const n = knob.release();
    process.stdout.write(`RELEASED ${JSON.stringify({ port, calls: n })}\n`);
  });
  return knob;
}
