import type { Request, Response } from 'express';
import type { AuditPeers } from '../audit/peers';
import type { EventSink } from '../lifeline/event-sink';

/** A server-sent event stream as an EventSink. */
export function sseSink(res: Response): EventSink {
  return {
    send: (event, data) => void res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`),
    end: () => void res.end(),
  };
}

/**
 * Opens a lifeline as a server-sent event stream: a hello event, a heartbeat comment every 15 s (so
 * idle clients do not time out), and `onClose` once the stream ends for any reason. The holder's
 * `x-audit-url` joins the audit peers for as long as it holds the lifeline, if its `x-audit-proof` shows
 * the holder is an app of this stack.
 */
export function openEventStream(req: Request, res: Response, hello: unknown, onClose: () => void, peers?: AuditPeers): void {
  const peer = peers?.learn(req.header('x-audit-url'), req.header('x-audit-proof')) ?? null;
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
  res.write(`event: hello\ndata: ${JSON.stringify(hello)}\n\n`);
  const heartbeat = setInterval(() => res.write(': heartbeat\n\n'), 15_000);
  req.socket.setKeepAlive(true, 1000);
  res.on('close', () => {
    clearInterval(heartbeat);
    peers?.forget(peer);
    onClose();
  });
}
