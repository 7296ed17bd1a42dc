import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { serverClassesFor } from './server-classes';

/** One GET through an Express app served by `server`; what the app saw and what the client got. */
async function oneRequest(withClasses: boolean): Promise<{ arrival: object | null; seen: object | null; replyArrival: object | null; replySeen: object | null; app: unknown; body: unknown; status: number }> {
  const app = express();
  let seen: object | null = null;
  let replySeen: object | null = null;
  let appOfReq: unknown;
  app.get('/x', (req, res) => {
    seen = Object.getPrototypeOf(req) as object;
    replySeen = Object.getPrototypeOf(res) as object;
    appOfReq = req.app;
    res.status(201).json({ ok: true, q: req.query.q });
  });
  const server = withClasses ? http.createServer(serverClassesFor(app), app) : http.createServer(app);
  let arrival: object | null = null;
  let replyArrival: object | null = null;
  // Runs before Express's handler: the prototypes the request and the response were built with.
  server.prependListener('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    arrival = Object.getPrototypeOf(req) as object;
    replyArrival = Object.getPrototypeOf(res) as object;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/x?q=7`);
    return { arrival, seen, replyArrival, replySeen, app: appOfReq, body: await res.json(), status: res.status };
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

describe('serverClassesFor: requests and responses built on the Express app prototypes', () => {
  it('a request arrives already on app.request, and Express behaves exactly as with the default classes', async () => {
    const plain = await oneRequest(false);
    const same = await oneRequest(true);
    // Without the classes a request arrives as a bare IncomingMessage and Express moves it.
    expect(plain.arrival).toBe(http.IncomingMessage.prototype);
    expect(plain.seen).not.toBe(plain.arrival);
    expect(plain.replyArrival).toBe(http.ServerResponse.prototype);
    expect(plain.replySeen).not.toBe(plain.replyArrival);
    // With them each starts where Express puts it, so Express's setPrototypeOf has nothing to change.
    expect(same.arrival).toBe(same.seen);
    expect(same.replyArrival).toBe(same.replySeen);
    expect(Object.getPrototypeOf(same.seen)).toBe(Object.getPrototypeOf(plain.seen)); // express's own request object
    for (const r of [plain, same]) {
      expect(r.status).toBe(201);
      expect(r.body).toEqual({ ok: true, q: '7' });
      expect(typeof (r.app as { handle?: unknown }).handle).toBe('function');
    }
  });

  it('refuses prototypes that are not a request and a response (TypeError), before any server exists', () => {
    expect(() => serverClassesFor({ request: {}, response: {} })).toThrow(TypeError);
    const app = express();
    expect(() => serverClassesFor({ request: app.request, response: {} })).toThrow(TypeError);
  });
});
