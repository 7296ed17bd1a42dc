import type { Request, Response } from 'express';

/**
 * Opens a lifeline as a server-sent event stream: a hello event, a heartbeat comment every 15 s (so
 * idle clients do not time out), and `onClose` once the stream ends for any reason.
 */
export function openEventStream(req: Request, res: Response, hello: unknown, onClose: () => void): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
  res.write(`event: hello\ndata: ${JSON.stringify(hello)}\n\n`);
  const heartbeat = setInterval(() => res.write(': heartbeat\n\n'), 15_000);
  req.socket.setKeepAlive(true, 1000);
  res.on('close', () => {
    clearInterval(heartbeat);
    onClose();
  });
}
