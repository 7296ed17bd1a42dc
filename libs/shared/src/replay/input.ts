// Inputs (DESIGN §6, §9): a journal row that entered the stack from outside — from the operator, a guest's
// console, an admin or hardware call, the harness — is marked as an input and carries what replay needs to
// issue it again: the request, and which principal's token it carried (never the token). A call from a peer
// app is not an input. External events (an app killed or restarted, a guest booted, logical time advanced)
// are inputs too, recorded by whoever caused them.

/** The apps of the stack: a request whose `x-caller` names one of them is a peer call, not an input. */
export const STACK_APPS: readonly string[] = ['host-kernel', 'vmm', 'guest'];

/** A REST call as it reached the app (the in-process door records the same shape). */
export interface HttpInput {
  kind: 'http';
  /** The app that received it, and for a guest the VM it runs on. */
  app: string;
  vm?: number;
  method: string;
  /** Path with its query string, as sent. */
  path: string;
  body: unknown;
  /** Whose token it carried: `admin`, `pid:<n>` (host process), `vm:<n>` (VM token), `none`. */
  principal: string;
}

/** Something that happened to the stack rather than a call into it. */
export interface EventInput {
  kind: 'boot' | 'kill' | 'restart' | 'advance';
  /** The app it happened to (`guest` with `vm` for a guest). */
  app: string;
  vm?: number;
  principal?: string;
  /** `advance`: logical milliseconds (Lamport ticks) the operator moved time by. */
  ms?: number;
  /** `kill`: the signal. */
  signal?: string;
  /** `boot`: the guest leaves its page requests unanswered (DEBUG_PAGE_REQUESTS=ignore); absent = it handles them. */
  pageRequests?: 'ignore';
}

export type InputRequest = HttpInput | EventInput;

/** Carried in the trace context of an outside request until the first journal row begun under it takes it. */
export interface InputMark {
  request: InputRequest;
  taken: boolean;
}

/** Names the principal behind a bearer token, in the app's own terms (never returns the token). */
export type PrincipalOf = (token: string | null) => string;
