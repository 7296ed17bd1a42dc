// The outbound REST transport (rest-client.ts): one keep-alive undici Pool per peer.

/** Default for a peer to send its headers, and then between body chunks (was fetch's whole-call AbortSignal). */
export const REST_DEFAULT_TIMEOUT_MS = 30_000;
/** How long a socket to a peer stays open idle (the peer's keep-alive hint wins when shorter). */
export const REST_KEEP_ALIVE_MS = 10_000;
/** TCP connect to a peer. */
export const REST_CONNECT_TIMEOUT_MS = 10_000;
