// Fault injection at a door between apps (the old fakes' `failWhen`, now wrapping the real adapter): a call the
// predicate picks fails with its errno before it reaches the other app, which so never sees it. Every call
// through the door is logged in order, failed or not. Bound ports (`as(token)`) share the log and predicate.
import { type Errno, KernelError } from '@app/shared/errno';

export interface CallRecord {
  method: string;
  args: unknown[];
  /** The errno injected, or null when the call went through. */
  injected: Errno | null;
}

export interface FailWhen<P> {
  port: P;
  calls: CallRecord[];
  /** Replace the predicate (null: let everything through). */
  fail: ((method: string, args: unknown[]) => Errno | null) | null;
}

/** Wraps a port (an object of async methods; `as` returns a bound port, wrapped the same way). */
export function failWhen<P extends object>(port: P, fail: FailWhen<P>['fail'] = null): FailWhen<P> {
  const state: FailWhen<P> = { port: undefined as unknown as P, calls: [], fail };
  const wrap = (target: P): P =>
    new Proxy(target, {
      get(t, prop, receiver) {
        const value = Reflect.get(t, prop, receiver) as unknown;
        if (typeof value !== 'function' || typeof prop !== 'string') return value;
        if (prop === 'as') return (...args: unknown[]) => wrap((value as (...a: unknown[]) => P).apply(t, args));
        return (...args: unknown[]) => {
          const injected = state.fail?.(prop, args) ?? null;
          state.calls.push({ method: prop, args, injected });
          if (injected) {
            const err = new KernelError(injected, `injected failure of ${prop}`);
            // Keep the method's shape: an async method rejects, a sync one (holdLifeline) throws.
            return prop === 'holdLifeline' ? (() => { throw err; })() : Promise.reject(err);
          }
          return (value as (...a: unknown[]) => unknown).apply(t, args);
        };
      },
    });
  state.port = wrap(port);
  return state;
}
