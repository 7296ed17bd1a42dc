// Fault injection at a door between apps (the old fakes' `failWhen`, now wrapping the real adapter): a call the
// predicate picks fails with its errno before it reaches the other app, which so never sees it. Every call
// through the door is logged in order, failed or not. Bound ports (`as(token)`) share the log and predicate.
import { type Errno, KernelError } from '@app/shared/errno';
import { interceptPort } from './intercept-port';

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
  state.port = interceptPort(port, (method, args, forward) => {
    const injected = state.fail?.(method, args) ?? null;
    state.calls.push({ method, args, injected });
    if (!injected) return forward();
    const err = new KernelError(injected, `injected failure of ${method}`);
    // Keep the method's shape: an async method rejects, a sync one (holdLifeline) throws.
    if (method === 'holdLifeline') throw err;
    return Promise.reject(err);
  });
  return state;
}
