// The serving end of a lifeline (DESIGN §1): where an app pushes the events of one holder (faults, page
// requests, exit). Over REST it is a server-sent event stream; in-process, the holder's callbacks.
export interface EventSink {
  send(event: string, data: unknown): void;
  /** Ends the stream from the serving side (the holder sees its lifeline end). */
  end(): void;
}

/** The holding end's callbacks: what a lifeline delivers, and its end (for any reason but our own close()). */
export interface LifelineHandlers {
  onEvent?: (e: { event: string; data: unknown }) => void;
  onEnd?: (reason: string) => void;
}

/** A held lifeline: resolves once the peer registered us as alive; close() is our death to the peer. */
export interface Lifeline {
  readonly opened: Promise<void>;
  close(): void;
}
