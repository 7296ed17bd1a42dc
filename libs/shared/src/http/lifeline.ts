import type { StackPeerKey } from '../auth/stack-peer';
import type { Lifeline, LifelineHandlers } from '../lifeline/event-sink';
import { outboundTraceHeaders } from '../trace';

export type { Lifeline } from '../lifeline/event-sink';

export interface LifelineEvent {
  event: string;
  data: unknown;
}

/**
 * Holds a lifeline: a long-lived SSE stream whose end, to the other side, is this holder's death
 * (DESIGN §1). Events the peer pushes on it (faults, page requests) reach `onEvent`; `onEnd` runs
 * once when the stream ends for any reason other than `close()`.
 */
export function holdLifeline(
  url: string,
  opts: { app: string; token: string; auditUrl?: string | null; peerKey?: StackPeerKey | null } & LifelineHandlers,
): Lifeline {
  const controller = new AbortController();
  let closedByUs = false;
  let resolveOpened!: () => void;
  let rejectOpened!: (err: Error) => void;
  const opened = new Promise<void>((resolve, reject) => {
    resolveOpened = resolve;
    rejectOpened = reject;
  });
  opened.catch(() => undefined);
  const end = (reason: string): void => {
    if (!closedByUs) opts.onEnd?.(reason);
  };
  void (async () => {
    try {
      const res = await fetch(url, {
        headers: {
          ...outboundTraceHeaders(opts.app, 0),
          authorization: `Bearer ${opts.token}`,
          accept: 'text/event-stream',
          // Where the holder's own journal can be read: the peer federates it into its audit answers once the
          // proof shows we are an app of its stack (without the stack's key we announce nothing).
          ...(opts.auditUrl && opts.peerKey ? { 'x-audit-url': opts.auditUrl, 'x-audit-proof': opts.peerKey.sign('audit-peer', opts.auditUrl) } : {}),
        },
        signal: controller.signal,
      });
      if (!res.ok || !res.body) {
        const err = new Error(`lifeline ${url}: HTTP ${res.status}`);
        rejectOpened(err);
        end(err.message);
        return;
      }
      resolveOpened();
      const decoder = new TextDecoder();
      let buffer = '';
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let cut: number;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const ev = parseBlock(block);
          if (ev) opts.onEvent?.(ev);
        }
      }
      end('stream ended');
    } catch (err) {
      rejectOpened(err as Error);
      end((err as Error).message);
    }
  })();
  return {
    opened,
    close: () => {
      closedByUs = true;
      controller.abort();
    },
  };
}

function parseBlock(block: string): LifelineEvent | null {
  let event = 'message';
  const data: string[] = [];
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) continue; // heartbeat comment
    if (line.startsWith('event:')) event = line.slice(6).trim();
    else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
  }
  if (!data.length) return null;
  const text = data.join('\n');
  try {
    return { event, data: JSON.parse(text) as unknown };
  } catch {
    return { event, data: text };
  }
}
