// The apps' Express adapter: Nest's own, with the HTTP server creating each request and response with the
// prototypes Express gives them. Express 5 moves every `req` and `res` onto its app's prototypes
// (`Object.setPrototypeOf` in `app.handle`). In V8 that is a map transition per object per request, and the
// property loads on them at every middleware, guard, pipe and handler site then miss their inline caches (the
// host spent 5–10% of its CPU in `LookupIterator::LookupInRegularHolder` under the bench's stack rows).
// node:http lets a server name the classes it builds requests and responses from; built from functions whose
// prototypes are the app's own, they already have the prototype Express sets, and setting an object's prototype
// to the one it has changes nothing. Express's behaviour is unchanged: the same objects, the same chain.
import * as http from 'node:http';
import type { NestApplicationOptions } from '@nestjs/common';
import { ExpressAdapter } from '@nestjs/platform-express';
import { serverClassesFor } from '../http/server-classes';

export class ExpressSameShapeAdapter extends ExpressAdapter {
  override initHttpServer(options: NestApplicationOptions): void {
    // The options this project never passes keep Nest's own server (HTTPS, 503 on closing, connection tracking).
    if (options?.httpsOptions || options?.return503OnClosing || options?.forceCloseConnections) {
      super.initHttpServer(options);
      return;
    }
    this.httpServer = http.createServer(serverClassesFor(this.getInstance()), this.getInstance());
  }
}
