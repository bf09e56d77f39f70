/**
 * `connect`: one document replicated with a Polyphony server over a WebSocket, in Node (pass the
 * `ws` package as `WebSocket`) or the browser, reconnecting with capped exponential backoff and
 * jitter until closed or refused.
 *
 * Invariants: the local document is the only store of unacknowledged events; every (re)connect
 * starts a fresh `link` whose handshake resends whatever the server's durable version lacks, so
 * nothing unacknowledged is forgotten. The token goes in the first frame (not the URL, which
 * proxies log). A close code that retrying cannot fix (bad token, wrong document, too large,
 * non-retryable protocol error) ends in status `refused` with the reason; nothing retries after.
 * `setOnline(false)` cuts the link on purpose (status `offline`, no reconnect) until
 * `setOnline(true)`, which reconnects at once; the handshake then sends only what is missing.
 */
import { fromWebSocket, type Channel, type WebSocketLike } from '../shared/channels.ts'
import {
  MSG,
  SYNC_ERRORS,
  SyncError,
  WireState,
  decodeMessage,
  errorName,
} from '../shared/protocol.ts'
import { link, type Link, type LinkOptions } from '../shared/sync.ts'
import type { Presence } from '../shared/presence.ts'
import type { Replica } from '../shared/replica.ts'
import { TextDoc, type VersionVector } from '../shared/text-doc.ts'

/** What `connect` can replicate: a `TextDoc`, a `RichDoc`, any replica with an agent id. */
export type ConnectableDoc = Replica & { readonly agent: string }

/**
 * Connection states, in the order a healthy connection passes them: `connecting` (socket
 * opening, token being checked), `connected` (the server accepted us and spoke: its handshake
 * has arrived), `synced` (as `synced` in API.md); `offline` (closed, or cut by `setOnline`),
 * `refused` (a close retrying cannot fix, with the reason).
 */
export type ConnectionStatus = 'connecting' | 'connected' | 'synced' | 'offline' | 'refused'

/** Options of `connect` (API.md "Client"). */
export interface ConnectOptions<D extends ConnectableDoc = TextDoc> {
  /** ws:// or wss:// base URL of the server, e.g. ws://localhost:8787. */
  url: string
  docId: string
  token?: string
  /** The document to replicate; a new TextDoc when omitted. */
  doc?: D
  /** A WebSocket implementation (the `ws` package in Node); default `globalThis.WebSocket`. */
  WebSocket?: unknown
  /** Shared presence state to replicate with the document. */
  presence?: Presence
  /**
   * Batching of outgoing edits (shared/sync.ts `LinkOptions`); default `CLIENT_LINK_TUNING`:
   * a keystroke goes out at the end of its event-loop turn; edits that pile up faster than
   * the link flushes share a message, waiting at most 50 ms.
   */
  linkTuning?: Pick<LinkOptions, 'batchDelayMs' | 'maxBatchDelayMs' | 'batchGrowth'>
  /** Reconnect backoff: first delay and cap, ms (defaults 100 and 5000). */
  backoff?: { minMs?: number; maxMs?: number }
  /**
   * A link on which nothing is heard from the server for this long, ms, is taken for dead (a
   * partition that closed nothing: a sleeping laptop, a NAT that forgot us) and replaced:
   * status `offline`, then a reconnect that resends whatever is unacknowledged. The server
   * says it is alive at every heartbeat (`heartbeatMs`, 30 s), which this must exceed. Default
   * 75,000; doubled after each link replaced this way until one syncs (a huge message that
   * takes longer than this to arrive is not cut off for ever).
   */
  silenceMs?: number
}

/** A live connection (API.md "Client"). */
export interface Connection<D extends ConnectableDoc = TextDoc> {
  readonly doc: D
  /**
   * Resolves once the server's state is merged and our pending events are acknowledged.
   * Rejects when the server refuses us, and on a read-only connection while this replica holds
   * events of its own the server lacks (they will not be stored; status stays `connected`).
   */
  readonly synced: Promise<void>
  readonly status: ConnectionStatus
  /** Why the server refused us (status `refused`), else undefined. */
  readonly refusedReason: string | undefined
  /** True once the server said this link is read-only (our edits are not accepted). */
  readonly readOnly: boolean
  on(event: 'status', h: (status: ConnectionStatus, reason?: string) => void): () => void
  on(event: 'error', h: (err: SyncError) => void): () => void
  on(event: 'ack', h: () => void): () => void
  /** The latest version the server has acknowledged as stored (empty before the first ack). */
  ackedVersion(): VersionVector
  /**
   * True when the server has acknowledged (stored) every event this replica made
   * (`doc.agent`). Events of other agents that came from the server need no acknowledgement;
   * compare `ackedVersion()` with `doc.version()` to check events relayed from elsewhere.
   */
  readonly allAcknowledged: boolean
  /**
   * False while the link is cut on purpose by `setOnline(false)` (status `offline`, no
   * reconnect attempts); edits keep landing in `doc` meanwhile.
   */
  readonly online: boolean
  /**
   * Cuts the link (`false`) or restores it (`true`). Unacknowledged events stay in `doc`; on
   * return the handshake exchanges version vectors, so each side sends only what the other
   * lacks. No effect after `close()` or a refusal; repeated calls with the same value are no-ops.
   */
  setOnline(online: boolean): void
  /** Stops reconnecting and closes the socket. */
  close(): void
}

/**
 * Default batching of a client's link: interactive latency over message count. A lone edit is
 * never held back (Hocuspocus and y-websocket send every update at once); the window grows
 * only while flushes keep carrying several edits, so a client that falls behind (a slow
 * device, a busy document) sends fewer, bigger messages.
 */
export const CLIENT_LINK_TUNING = Object.freeze({
  batchDelayMs: 0,
  maxBatchDelayMs: 50,
  batchGrowth: 'backlog' as const,
})

/**
 * Server close codes after which reconnecting cannot help. Must match
 * `FINAL_CLOSE_CODES` in server/close-codes.ts (test/server-close-codes.test.ts checks).
 */
export const FINAL_CLOSE_CODES: ReadonlySet<number> = new Set([
  1003, 1009, 4400, 4401, 4403, 4404, 4413,
])

/** Whether a close `code` ends the connection for good (else: reconnect with backoff). */
export function isFinalClose(code: number): boolean {
  if (FINAL_CLOSE_CODES.has(code)) return true
  if (code > 4000 && code < 4100) {
    const name = errorName(code - 4000)
    return name !== undefined && !SYNC_ERRORS[name].retryable
  }
  return false
}

/**
 * The wait before reconnect attempt `attempt` (0-based): `min(maxMs, minMs * 2^attempt)`, of
 * which a random half is dropped ("equal jitter"), so a reconnect storm after a server restart
 * spreads out instead of arriving in waves (RELIABILITY A10).
 */
export function backoffDelay(
  attempt: number,
  minMs: number,
  maxMs: number,
  random: () => number = Math.random,
): number {
  const cap = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30))
  return cap * (0.5 + random() * 0.5)
}

type WebSocketCtor = new (url: string) => WebSocketLike & {
  addEventListener(type: 'close', h: (ev: { code: number; reason: string }) => void): void
}

type Handlers = {
  status: ((s: ConnectionStatus, reason?: string) => void)[]
  error: ((e: SyncError) => void)[]
  ack: (() => void)[]
}

/** Connects `opts.doc` (or a new TextDoc) to document `opts.docId` on the server at `opts.url`. */
export function connect<D extends ConnectableDoc = TextDoc>(
  opts: ConnectOptions<D>,
): Connection<D> {
  return new ClientConnection<D>(opts)
}

class ClientConnection<D extends ConnectableDoc> implements Connection<D> {
  readonly doc: D
  readonly synced: Promise<void>
  status: ConnectionStatus = 'connecting'
  refusedReason: string | undefined
  readOnly = false
  online = true
  private acked: VersionVector = {}
  private resolveSynced!: () => void
  private rejectSynced!: (e: Error) => void
  private readonly Ws: WebSocketCtor
  private readonly wsUrl: string
  private readonly handlers: Handlers = { status: [], error: [], ack: [] }
  private socket: (WebSocketLike & { close(code?: number, reason?: string): void }) | null = null
  private link: Link | null = null
  private attempt = 0
  private timer: ReturnType<typeof setTimeout> | null = null
  private stopped = false
  private readonly minMs: number
  private readonly maxMs: number
  private readonly silenceMs: number
  /** Checks the live socket for a dead link (`checkAlive`); null without one. */
  private watchdog: ReturnType<typeof setInterval> | null = null
  /** When the server was last heard on the live socket, and last checked (performance.now()). */
  private heardAt = 0
  private checkedAt = 0
  /** Links replaced as dead since the last sync (each doubles the silence allowed). */
  private deadLinks = 0

  constructor(private readonly opts: ConnectOptions<D>) {
    this.doc = opts.doc ?? (new TextDoc() as unknown as D)
    const Ws = (opts.WebSocket ?? (globalThis as { WebSocket?: unknown }).WebSocket) as
      WebSocketCtor | undefined
    if (typeof Ws !== 'function') {
      throw new TypeError('no WebSocket implementation: pass the `ws` package as opts.WebSocket')
    }
    if (typeof opts.docId !== 'string' || opts.docId.length === 0) {
      throw new RangeError('docId must be a non-empty string')
    }
    this.Ws = Ws
    this.wsUrl = opts.url.replace(/\/+$/, '') + '/ws/' + encodeURIComponent(opts.docId)
    this.minMs = opts.backoff?.minMs ?? 100
    this.maxMs = opts.backoff?.maxMs ?? 5000
    this.silenceMs = opts.silenceMs ?? 75_000
    if (!(this.silenceMs > 0)) throw new RangeError('silenceMs must be a positive number')
    this.synced = new Promise<void>((resolve, reject) => {
      this.resolveSynced = resolve
      this.rejectSynced = reject
    })
    this.synced.catch(() => undefined)
    this.open()
  }

  on(event: keyof Handlers, h: (...args: never[]) => void): () => void {
    const list = this.handlers[event] as unknown[]
    list.push(h)
    return () => {
      const i = list.indexOf(h)
      if (i >= 0) list.splice(i, 1)
    }
  }

  ackedVersion(): VersionVector {
    return this.acked
  }

  get allAcknowledged(): boolean {
    const own = this.doc.version()[this.doc.agent] ?? 0
    return (this.acked[this.doc.agent] ?? 0) >= own
  }

  private setStatus(s: ConnectionStatus, reason?: string): void {
    if (this.status === s && s !== 'refused') return
    this.status = s
    for (const h of [...this.handlers.status]) h(s, reason)
  }

  private open(): void {
    if (this.stopped || !this.online) return
    this.setStatus('connecting')
    let ws: InstanceType<WebSocketCtor>
    try {
      ws = new this.Ws(this.wsUrl)
    } catch (err) {
      return this.refuse(`bad url: ${String(err)}`)
    }
    this.socket = ws
    ws.addEventListener('open', () => {
      if (this.opts.token !== undefined) ws.send(new TextEncoder().encode(this.opts.token))
      this.heardAt = this.checkedAt = performance.now()
      this.watchdog ??= setInterval(() => this.checkAlive(), this.checkEveryMs)
      ;(this.watchdog as { unref?: () => void }).unref?.()
    })
    ws.addEventListener('error', () => undefined) // the close event follows and decides
    ws.addEventListener('close', (ev) => this.onClose(ws, ev.code, ev.reason))
    const channel = this.watchHello(fromWebSocket(ws))
    const l = link(this.doc, channel, {
      ...CLIENT_LINK_TUNING,
      ...this.opts.linkTuning,
      presence: this.opts.presence,
      onError: (err) => {
        if (err.codeName === 'READ_ONLY') {
          if (this.readOnly) return // already told from the HELLO
          this.readOnly = true
        }
        for (const h of [...this.handlers.error]) h(err)
      },
    })
    this.link = l
    l.on('ack', (acked) => {
      this.acked = acked
      for (const h of [...this.handlers.ack]) h()
    })
    l.synced.then(
      () => {
        if (this.link !== l) return
        this.acked = l.ackedVersion()
        this.attempt = 0
        this.deadLinks = 0
        // The HELLO may have acknowledged what the last link could not.
        for (const h of [...this.handlers.ack]) h()
        if (this.readOnly && !this.allAcknowledged) {
          // `synced` means our events are stored too, and a read-only server stores none.
          const own = this.doc.version()[this.doc.agent] ?? 0
          const waiting = own - (this.acked[this.doc.agent] ?? 0)
          this.rejectSynced(
            new Error(`read-only connection: ${waiting} local events will not be stored`),
          )
          return
        }
        this.setStatus('synced')
        this.resolveSynced()
      },
      () => undefined,
    )
  }

  /**
   * `channel` with a look at the server's first message: its HELLO says whether the server
   * refuses our edits (read-only token). The link then sends none, so the HELLO is where the
   * client is told; we report it as a READ_ONLY error and set `readOnly`.
   */
  private watchHello(channel: Channel): Channel {
    let first = true
    return {
      send: (m) => channel.send(m),
      onClose: (h) => channel.onClose(h),
      close: (code, reason) => channel.close(code, reason),
      onMessage: (h) =>
        channel.onMessage((m) => {
          this.heardAt = performance.now()
          if (first) {
            // The server speaks only once the token is accepted: now we are connected.
            first = false
            this.setStatus('connected')
            if (m.length > 1 && m[1] === MSG.HELLO) {
              try {
                const hello = decodeMessage(m, new WireState())
                if (hello.type === 'hello' && hello.readOnly && !this.readOnly) {
                  this.readOnly = true
                  const err = new SyncError('READ_ONLY', 'the server accepts no edits here', true)
                  for (const e of [...this.handlers.error]) e(err)
                }
              } catch {
                // the link decodes it again and reports what is wrong
              }
            }
          }
          h(m)
        }),
    }
  }

  private onClose(ws: unknown, code: number, reason: string): void {
    if (ws !== this.socket) return
    this.link?.close()
    this.link = null
    this.socket = null
    this.stopWatchdog()
    if (this.stopped) return
    if (isFinalClose(code)) return this.refuse(reason || `closed with code ${code}`)
    this.retryLater(reason || `closed with code ${code}`)
  }

  /** Status `offline` with `reason`, and a reconnect after the backoff. */
  private retryLater(reason: string): void {
    const delay = backoffDelay(this.attempt, this.minMs, this.maxMs)
    this.attempt = Math.min(this.attempt + 1, 30)
    // Set before the status is told: a status handler that calls close() clears it.
    this.timer = setTimeout(() => this.open(), delay)
    this.setStatus('offline', reason)
  }

  private get checkEveryMs(): number {
    return Math.min(this.silenceMs / 4, 5000)
  }

  /** Replaces a link on which the server has been silent too long (see `silenceMs`). */
  private checkAlive(): void {
    if (this.socket === null || this.link === null) return
    const now = performance.now()
    // Checked late: our own event loop was held (a long task, a suspended tab or laptop), so
    // whatever the server sent may still be unread. Listen again before judging.
    const late = now - this.checkedAt > 2 * this.checkEveryMs
    this.checkedAt = now
    if (late) this.heardAt = Math.max(this.heardAt, now - this.checkEveryMs)
    const allowed = this.silenceMs * 2 ** Math.min(this.deadLinks, 5)
    const silent = now - this.heardAt
    if (silent < allowed) return
    this.deadLinks++
    const reason = `nothing from the server in ${Math.round(silent / 1000)} s`
    this.dropSocket(reason, true)
    this.retryLater(reason)
  }

  private stopWatchdog(): void {
    if (this.watchdog !== null) clearInterval(this.watchdog)
    this.watchdog = null
  }

  private refuse(reason: string): void {
    this.stopped = true
    this.refusedReason = reason
    this.setStatus('refused', reason)
    this.rejectSynced(new Error(`connection refused: ${reason}`))
  }

  setOnline(online: boolean): void {
    if (this.stopped || online === this.online) return
    this.online = online
    if (online) {
      if (this.timer !== null) clearTimeout(this.timer)
      this.timer = null
      this.attempt = 0
      this.open()
      return
    }
    this.dropSocket('offline switch')
    this.setStatus('offline', 'switched offline')
  }

  /**
   * Closes the current socket and link (if any) and cancels a pending reconnect; `hard`: at
   * once, without the closing handshake (the link is dead, and a handshake would wait 30 s).
   */
  private dropSocket(reason: string, hard = false): void {
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    this.stopWatchdog()
    this.link?.close()
    this.link = null
    const ws = this.socket
    this.socket = null // its close event is then ignored (onClose checks identity)
    try {
      const terminate = (ws as { terminate?: () => void } | null)?.terminate
      if (hard && terminate !== undefined) terminate.call(ws)
      else ws?.close(1000, reason)
    } catch {
      // already closed
    }
  }

  close(): void {
    if (this.stopped && this.socket === null) return
    this.stopped = true
    this.dropSocket('client closed')
    if (this.status !== 'refused') this.setStatus('offline', 'closed')
    this.rejectSynced(new Error('connection closed before it synced')) // no-op once settled
  }
}
