// Holding calls at a door between apps (for concurrency tests): a call the predicate picks waits, before it reaches
// the other app, until the test releases it. What the test can then show is what ran meanwhile: work that does not
// wait for the held call completes, work ordered after it does not start. Bound ports (`as(token)`) share the state.

export interface HeldCall {
  method: string;
  args: unknown[];
  /** Lets the call go on to the other app. */
  release(): void;
}

export interface HoldWhen<P> {
  port: P;
  /** Calls held and not yet released, oldest first. */
  held: HeldCall[];
  /** Methods of every call that reached the other app, in order (held ones once released). */
  passed: string[];
  /** Replace the predicate (null: hold nothing). */
  hold: ((method: string, args: unknown[]) => boolean) | null;
  /** Resolves with the first held call of `method` (at once if one is held already). */
  reached(method: string): Promise<HeldCall>;
}

/** Wraps a port (an object of async methods; `as` returns a bound port, wrapped the same way). */
export function holdWhen<P extends object>(port: P, hold: HoldWhen<P>['hold'] = null): HoldWhen<P> {
  const waiting: Array<{ method: string; resolve: (c: HeldCall) => void }> = [];
  const state: HoldWhen<P> = {
    port: undefined as unknown as P,
    held: [],
    passed: [],
    hold,
    reached: (method) => {
      const now = state.held.find((c) => c.method === method);
      return now ? Promise.resolve(now) : new Promise((resolve) => waiting.push({ method, resolve }));
    },
  };
  const wrap = (target: P): P =>
    new Proxy(target, {
      get(t, prop, receiver) {
        const value = Reflect.get(t, prop, receiver) as unknown;
        if (typeof value !== 'function' || typeof prop !== 'string') return value;
        if (prop === 'as') return (...args: unknown[]) => wrap((value as (...a: unknown[]) => P).apply(t, args));
        const forward = (args: unknown[]): unknown => {
          state.passed.push(prop);
          return (value as (...a: unknown[]) => unknown).apply(t, args);
        };
        if (prop === 'holdLifeline') return (...args: unknown[]) => forward(args);
        return (...args: unknown[]) => {
          if (!state.hold?.(prop, args)) return forward(args);
          return new Promise((resolve) => {
            const call: HeldCall = {
              method: prop,
              args,
              release: () => {
                state.held.splice(state.held.indexOf(call), 1);
                resolve(forward(args));
              },
            };
            state.held.push(call);
            for (let i = waiting.length - 1; i >= 0; i--) if (waiting[i].method === prop) waiting.splice(i, 1)[0].resolve(call);
          });
        };
      },
    });
  state.port = wrap(port);
  return state;
}
