// The request and response classes of an app's HTTP server, built so that each object starts on the prototype
// Express moves it to (express-adapter.ts says why). Plain node:http and Express, no Nest: unit-tested.
import * as http from 'node:http';

/** An Express app's own prototypes for its requests and responses (`app.request`, `app.response`). */
export interface ExpressPrototypes {
  request: object;
  response: object;
}

/** Server options whose IncomingMessage and ServerResponse instances start on app.request and app.response. */
export function serverClassesFor(app: ExpressPrototypes): http.ServerOptions {
  // node:http's own constructors are plain functions: called on `this`, they build the same object.
  const Incoming = http.IncomingMessage as unknown as (this: http.IncomingMessage, socket: unknown) => void;
  const Response = http.ServerResponse as unknown as (this: http.ServerResponse, req: unknown, options?: unknown) => void;
  function Request(this: http.IncomingMessage, socket: unknown): void {
    Incoming.call(this, socket);
  }
  function Reply(this: http.ServerResponse, req: unknown, options?: unknown): void {
    Response.call(this, req, options);
  }
  if (!(app.request instanceof http.IncomingMessage) || !(app.response instanceof http.ServerResponse)) {
    throw new TypeError('serverClassesFor needs prototypes that inherit from http.IncomingMessage and http.ServerResponse');
  }
  Request.prototype = app.request;
  Reply.prototype = app.response;
  return { IncomingMessage: Request as unknown as typeof http.IncomingMessage, ServerResponse: Reply as unknown as typeof http.ServerResponse };
}
