/**
 * Server limits: one named object, every field with the reason it exists.
 *
 * `DEFAULT_LIMITS` is what `createServer` uses; `createServer({ limits: { … } })` overrides
 * any subset. The README lists the same table. Every limit is enforced per connection or per
 * process before the work it bounds is done (a frame over `maxMessageBytes` is refused on its
 * header, before it is buffered; pre-auth bytes are counted before they are kept).
 */

/** Every limit the server enforces. Times are milliseconds, sizes bytes unless named otherwise. */
export interface Limits {
  /** Largest WebSocket message accepted, after reassembly; bigger ones close 1009 (websocket.ts). */
  readonly maxMessageBytes: number
  /**
   * Bytes a socket may send before it has authenticated; more closes the socket (4400). Until
   * then it is the message size limit too: a longer message is refused as it starts.
   */
  readonly maxPreAuthBytes: number
  /** Messages a socket may send before it has authenticated and its document is loaded. */
  readonly maxPreAuthMessages: number
  /** Absolute deadline from upgrade to authenticated, however the socket trickles (4408). */
  readonly authTimeoutMs: number
  /** Sustained events (UTF-16 units inserted or deleted) per second per connection. */
  readonly eventsPerSecond: number
  /** Events a connection may send in one burst (token bucket size) before it is throttled. */
  readonly eventBurst: number
  /** Messages per second per connection (any kind: sync, presence); excess is throttled. */
  readonly messagesPerSecond: number
  /** Presence updates per second per connection; excess presence messages are dropped. */
  readonly presencePerSecond: number
  /** Largest document, in UTF-16 code units of content; writes beyond it are refused (4413). */
  readonly maxDocumentChars: number
  /**
   * Documents one connection may open: 1, the one its URL names (a link carries one document;
   * `resolveLimits` refuses any other value rather than ignore it).
   */
  readonly maxDocumentsPerConnection: number
  /** Documents loaded in one process; at the cap idle ones are unloaded, else 1013 (try later). */
  readonly maxLoadedDocuments: number
  /** Open WebSocket connections per remote address (the socket's, never a header). */
  readonly maxConnectionsPerIp: number
  /** New WebSocket connections per second per remote address, sustained; excess gets HTTP 429. */
  readonly connectionsPerIpPerSecond: number
  /** New connections one address may open in a burst (a reconnect storm) before that rate applies. */
  readonly connectionBurstPerIp: number
  /** Bytes queued to a slow reader (`bufferedAmount`) before its link is dropped (4409). */
  readonly maxSendBufferBytes: number
  /** A document with no connections is unloaded after this long (after its writes are flushed). */
  readonly idleUnloadMs: number
  /** Interval of WebSocket pings; a socket that misses one whole interval is terminated. */
  readonly heartbeatMs: number
  /** Stored updates after which a document's log is compacted into one snapshot. */
  readonly compactAfterUpdates: number
  /**
   * And the bytes of those updates, as a fraction of the last snapshot's: a document with a
   * long history compacts less often (see the default's reason).
   */
  readonly compactAfterGrowth: number
  /** Attempts for one storage write before its connection is closed with 1011 (retry later). */
  readonly storageWriteAttempts: number
}

/** The limits `createServer` uses unless told otherwise. */
export const DEFAULT_LIMITS: Limits = Object.freeze({
  // Hocuspocus and y-websocket inherit ws's 100 MiB default: one 50 MB insert stalls every
  // other client for about a second. 16 MiB still takes a large paste or an offline session.
  maxMessageBytes: 16 * 1024 * 1024,
  // A token is a few hundred bytes; anything close to 64 KiB before auth is an attack (B3).
  maxPreAuthBytes: 64 * 1024,
  maxPreAuthMessages: 100,
  // Hocuspocus GHSA-xwhh: sockets that trickle bytes to stay unauthenticated forever (A7).
  authTimeoutMs: 10_000,
  // Fast typing is ~10 units/s; paste arrives as one burst. 20k/s sustained keeps one
  // connection from monopolising the event loop (C10) while the burst covers a 1 M-char paste.
  eventsPerSecond: 20_000,
  eventBurst: 1_000_000,
  messagesPerSecond: 500,
  // y-protocols awareness has no rate limit; cursors need ~20/s at most (D8).
  presencePerSecond: 20,
  // None of the peers cap document size (C10); 10 M units is ~100 books.
  maxDocumentChars: 10_000_000,
  maxDocumentsPerConnection: 1,
  // y-websocket leaks documents (#100, #145); Hocuspocus caps pending documents at 100 (B4).
  maxLoadedDocuments: 10_000,
  maxConnectionsPerIp: 1_000,
  // The cap above bounds open sockets, not churn: a connect/close loop would make the server
  // pay a handshake and a document lookup per iteration (A10). Hocuspocus's throttle is opt-in
  // and keys on spoofable headers. A whole reconnect storm of the cap passes; then 50/s.
  connectionsPerIpPerSecond: 50,
  connectionBurstPerIp: 1_000,
  // No peer bounds bufferedAmount (A9): a reader that stops reading would grow memory forever.
  maxSendBufferBytes: 32 * 1024 * 1024,
  idleUnloadMs: 30_000,
  heartbeatMs: 30_000,
  compactAfterUpdates: 1_000,
  // A snapshot encodes the history written since the last one (earlier chunks are kept as
  // bytes; about 4 µs an event of concurrent typing) and deflates the text on the thread pool,
  // but still copies the text and walks the visible characters on the event loop. At a fixed
  // count, a long-lived busy document would pay that every 1,000 updates, more as it grows.
  // Waiting until the log holds half the snapshot's bytes again keeps compaction's cost in
  // proportion to the writes; a load then replays at most that much after the snapshot.
  compactAfterGrowth: 0.5,
  storageWriteAttempts: 3,
})

/**
 * The effective limits: `DEFAULT_LIMITS` with `overrides` applied. Throws RangeError on a
 * negative, non-finite or unknown limit so a typo does not silently disable a guard.
 */
export function resolveLimits(overrides: Partial<Limits> = {}): Limits {
  const out: Record<string, number> = { ...DEFAULT_LIMITS }
  for (const [key, value] of Object.entries(overrides)) {
    if (!Object.prototype.hasOwnProperty.call(DEFAULT_LIMITS, key)) {
      throw new RangeError(`unknown limit ${JSON.stringify(key)}`)
    }
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      throw new RangeError(`limit ${key} must be a finite number >= 0, got ${String(value)}`)
    }
    out[key] = value
  }
  if (out.maxDocumentsPerConnection !== 1) {
    // Not a knob: the WebSocket path names the connection's document, and a link carries one.
    throw new RangeError(
      `limit maxDocumentsPerConnection must be 1 (a connection opens the one document its URL ` +
        `names), got ${out.maxDocumentsPerConnection}`,
    )
  }
  return Object.freeze(out) as unknown as Limits
}
