import type { NextFunction, Request, Response } from 'express';
import { StackPeerKey } from '../auth/stack-peer';
import { LamportClock } from '../clock';
import { traceMiddleware } from './trace.middleware';

/** Runs the middleware on a request with these headers; returns the x-lamport it answered with. */
function request(mw: ReturnType<typeof traceMiddleware>, headers: Record<string, string>): string {
  const answered: Record<string, string> = {};
  const req = { header: (name: string) => headers[name.toLowerCase()] } as unknown as Request;
  const res = { setHeader: (k: string, v: string) => (answered[k] = v), end: () => res, headersSent: false } as unknown as Response;
  mw(req, res, (() => undefined) as NextFunction);
  return answered['x-lamport'];
}

describe('x-lamport on an incoming request', () => {
  const key = StackPeerKey.fromAuditToken('audit-token-e2e') as StackPeerKey;

  it('is ignored without a proof that the caller is an app of this stack (anyone could pin the clock at 2^53)', () => {
    const clock = new LamportClock(7);
    const mw = traceMiddleware(clock, key);
    request(mw, { 'x-lamport': String(Number.MAX_SAFE_INTEGER) });
    request(mw, { 'x-lamport': String(Number.MAX_SAFE_INTEGER), 'x-lamport-proof': 'f'.repeat(32) });
    request(mw, { 'x-lamport': '500', 'x-lamport-proof': StackPeerKey.fromAuditToken('another-stack-token')!.sign('lamport', '500') });
    expect(clock.peek()).toBe(7);
  });

  it('in an open lab (no audit token, so no stack secret) moves the clock from any caller, by at most the step bound', () => {
    const open = new LamportClock(7, 1000);
    const mw = traceMiddleware(open, null);
    expect(request(mw, { 'x-lamport': '500' })).toBe('500');
    request(mw, { 'x-lamport': String(Number.MAX_SAFE_INTEGER) });
    expect(open.peek()).toBe(1500);
  });

  it('from a peer of this stack moves the clock, by at most the step bound', () => {
    const clock = new LamportClock(0, 1000);
    const mw = traceMiddleware(clock, key);
    expect(request(mw, { 'x-lamport': '500', 'x-lamport-proof': key.sign('lamport', '500') })).toBe('500');
    const huge = String(Number.MAX_SAFE_INTEGER);
    request(mw, { 'x-lamport': huge, 'x-lamport-proof': key.sign('lamport', huge) });
    expect(clock.peek()).toBe(1500);
  });
});
