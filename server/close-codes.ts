/**
 * WebSocket close codes the server uses outside the sync protocol's own (`4000 + SyncError
 * code`, shared/protocol.ts), and whether a client should reconnect after each.
 *
 * client/connection.ts keeps the same table (it may not import from server/); a test checks the
 * two agree. Codes 4400-4499 mirror HTTP statuses so they read at a glance in logs.
 */

/** Close codes with their meaning. */
export const CLOSE = Object.freeze({
  /** Server shutting down (SIGTERM/SIGINT, `close()`): reconnect, preferably elsewhere/later. */
  GOING_AWAY: 1001,
  /** A text frame on the binary protocol. */
  UNSUPPORTED_DATA: 1003,
  /** A message over `maxMessageBytes` (sent on its frame's header, before it is buffered). */
  MESSAGE_TOO_BIG: 1009,
  /** Unexpected server error (storage write failing after retries): reconnect later. */
  INTERNAL_ERROR: 1011,
  /** The document cannot be loaded now (storage read failed, process at its document cap). */
  TRY_AGAIN_LATER: 1013,
  /** More bytes or messages before authentication than allowed, or an unreadable first message. */
  BAD_REQUEST: 4400,
  /** No token, or a malformed, badly signed or expired one. */
  UNAUTHORIZED: 4401,
  /** The token is for another document. */
  FORBIDDEN: 4403,
  /** The document id in the URL is not acceptable. */
  BAD_DOCUMENT_ID: 4404,
  /** Not authenticated within `authTimeoutMs`. */
  AUTH_TIMEOUT: 4408,
  /** The client did not read: its send buffer passed `maxSendBufferBytes`. */
  SLOW_READER: 4409,
  /** The document reached `maxDocumentChars`; further writes are refused. */
  DOCUMENT_TOO_LARGE: 4413,
  /** Too many connections from this address. */
  TOO_MANY_CONNECTIONS: 4429,
})

/** Close codes after which reconnecting cannot help (the client reports "refused" and stops). */
export const FINAL_CLOSE_CODES: ReadonlySet<number> = new Set([
  CLOSE.UNSUPPORTED_DATA,
  CLOSE.MESSAGE_TOO_BIG,
  CLOSE.BAD_REQUEST,
  CLOSE.UNAUTHORIZED,
  CLOSE.FORBIDDEN,
  CLOSE.BAD_DOCUMENT_ID,
  CLOSE.DOCUMENT_TOO_LARGE,
])
