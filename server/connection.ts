/**
 * One WebSocket connection to one document: authentication, the pre-auth and loading buffer,
 * the sync `link`, and the per-connection limits (rate, document size, slow reader).
 *
 * States: `auth` (waiting for a token) -> `loading` (document being acquired) -> `linked` ->
 * `closed`. Invariants: nothing a socket sends before authentication is decoded, only counted
 * (bytes, messages) and, after auth, replayed in order to the link; frames after close are
 * ignored (A11); every close uses a valid code (F1); the document is released exactly once.
 */
import type { DirectChannel, LinkEndpoint } from '../shared/channels.ts'
import { MSG, PROTOCOL_VERSION, closeCodeFor } from '../shared/protocol.ts'
import { boundLink, type LinkOptions, type SyncError } from '../shared/sync.ts'
import { summarizeUpdate } from '../shared/update-summary.ts'
import { anonymousIdentity, verifyToken, type TokenClaims, type TokenProblem } from './auth.ts'
import { CLOSE } from './close-codes.ts'
import { SharedTimers } from './shared-timers.ts'
import { Bucket } from './token-bucket.ts'
import { CapacityError, whenStored, type DocumentRegistry, type LoadedDoc } from './documents.ts'
import type { Limits } from './limits.ts'
import type { Logger } from './log.ts'
import type { ServerMetrics } from './metrics.ts'
import type { Presence } from '../shared/presence.ts'
import type { HubSocket, HubSocketHandler } from './websocket.ts'

/** What every connection of one server shares. */
export interface ConnectionContext {
  readonly registry: DocumentRegistry
  readonly limits: Limits
  readonly secret: string | undefined
  readonly log: Logger
  readonly metrics: ServerMetrics
  /** The one presence state of a loaded document, shared by its links. */
  presenceFor(entry: LoadedDoc): Presence
  /** Batching of the server's links (see `SERVER_LINK_TUNING`). */
  readonly linkTuning: LinkTuning
  /** Fan-out latency bookkeeping of a loaded document. */
  fanoutFor(entry: LoadedDoc): FanoutClock
  /** The connection's socket closed (called once). */
  closed(conn: ServerConnection): void
}

/** The link batching options the server sets (shared/sync.ts `LinkOptions`), and its fan-out budget. */
export type LinkTuning = Pick<
  LinkOptions,
  'batchDelayMs' | 'maxBatchDelayMs' | 'batchGrowth' | 'relayDelayMs'
> & {
  /**
   * Socket writes per second one document's fan-out aims to stay under: with `n` connections
   * its links flush at most every `n / fanoutWritesPerSecond` s (whole ms; at least
   * `batchDelayMs`), all at the same moments (`alignBatches`), so a busy document with a large
   * audience sends each client fewer, bigger messages, encoded once for all of them.
   */
  fanoutWritesPerSecond?: number
}

/**
 * Server links favour fan-out latency: a star hub relays every event it receives at the end of
 * the event-loop turn that integrated it (no relay delay, no window while traffic is light).
 * Events that arrive together share a message, one update encoded once for every link
 * (shared/update-log.ts); when flushes keep carrying several updates (the hub is busy), the
 * window grows up to 10 ms so receivers apply fewer, bigger batches. (A 40 ms cap held every
 * event of a steady 10-client x 500 edits/s session 20-40 ms: p50 47 ms against 6 ms now.)
 * With a large audience the fan-out budget sets a window instead (1,500 writes/s: 6 ms at 10
 * connections, 33 ms at 50, 133 ms at 200): each socket write costs the server about 10 µs of
 * kernel time on loopback, whatever it carries (perf, 200 clients x 100 edits/s), and links
 * flushing at their own moments each paid a graph diff of their own. Measured at 200 x 100
 * (server/README.md, stops 22 and 32): 16-19 µs of server CPU per delivered edit without the
 * window, 12.5-14.4 at 5,000 writes/s, 10.3-10.6 at 3,000 (stop 22's code); on stop 32's code,
 * main thread 4.4-5.2 µs at 3,000 and 3.6-3.8 at 1,500, for a p50 of 39-44 ms and 81-87 ms.
 */
export const SERVER_LINK_TUNING: LinkTuning = Object.freeze({
  batchDelayMs: 0,
  maxBatchDelayMs: 10,
  batchGrowth: 'backlog',
  relayDelayMs: 0,
  fanoutWritesPerSecond: 1500,
})

/** The shortest time between two flushes of one link of a document held by `links` connections. */
export function fanoutWindowMs(links: number, tuning: LinkTuning): number {
  const budget = tuning.fanoutWritesPerSecond ?? Infinity
  return Math.max(tuning.batchDelayMs ?? 0, Math.floor((links * 1000) / budget))
}

/** Time from the first message received since the last fan-out to the next send to others. */
export interface FanoutClock {
  receivedAt: number | null
  from: ServerConnection | null
}

const TOKEN_CLOSE: Record<TokenProblem, number> = {
  missing: CLOSE.UNAUTHORIZED,
  malformed: CLOSE.UNAUTHORIZED,
  'bad-signature': CLOSE.UNAUTHORIZED,
  expired: CLOSE.UNAUTHORIZED,
  'wrong-document': CLOSE.FORBIDDEN,
}

/** The connection whose message is being handled (its link's integrations are counted). */
let delivering: ServerConnection | null = null
/** A keepalive is being sent (`ServerConnection.keepAlive`): not counted as a delivery. */
let keepingAlive = false
function countIntegrated(update: Uint8Array): void {
  if (delivering !== null) delivering.integrated += summarizeUpdate(update)?.events ?? 0
}

/**
 * The link options of a document's connections: one object per role (made on first use),
 * shared by all of them (a link copies nothing of it; the peer's identity is given apart, see
 * `boundLink`).
 */
const writeOptions = new WeakMap<LoadedDoc, LinkOptions>()
const readOptions = new WeakMap<LoadedDoc, LinkOptions>()
/** The clock of every server link: a document's links flush at the same moments, on one timer. */
const linkClock = new SharedTimers()

function linkOptionsFor(ctx: ConnectionContext, entry: LoadedDoc, readOnly: boolean): LinkOptions {
  const byDoc = readOnly ? readOptions : writeOptions
  let o = byDoc.get(entry)
  if (o === undefined) byDoc.set(entry, (o = new ServerLinkOptions(ctx, entry, readOnly)))
  return o
}
/**
 * A document's link options (one per role, shared by its links). A class: its instances share
 * one hidden class with their fields in the object, and the window's getter lives on the
 * prototype. (An object literal with that getter was a dictionary, about 800 bytes per
 * document: 2026-11-28, heap snapshots of the memory scenario.)
 */
class ServerLinkOptions implements LinkOptions {
  readonly persist: LinkOptions['persist']
  readonly durableVersion: LinkOptions['durableVersion']
  readonly whenStored: LinkOptions['whenStored']
  readonly beforeFlush: LinkOptions['beforeFlush']
  readonly onError: LinkOptions['onError']
  readonly maxMessageBytes: number
  // A hub sends every client the same bytes, and keeps no dictionary per connection.
  readonly deflate = false
  // The server's own events (merge events) are stored by the server: no client acks them.
  readonly ackOwnEvents = false
  readonly maxBatchDelayMs: number | undefined
  readonly batchGrowth: LinkOptions['batchGrowth']
  readonly alignBatches = true
  readonly relayDelayMs: number | undefined
  readonly presence: Presence
  readonly onIntegrated = countIntegrated
  readonly clock = linkClock
  private readonly tuning: LinkTuning

  constructor(
    ctx: ConnectionContext,
    private readonly entry: LoadedDoc,
    readonly readOnly: boolean,
  ) {
    const tuning = ctx.linkTuning
    ;[this.persist, this.durableVersion, this.whenStored, this.beforeFlush, this.onError] = hooksOf(
      ctx,
      entry,
    )
    this.maxMessageBytes = ctx.limits.maxMessageBytes
    this.maxBatchDelayMs = tuning.maxBatchDelayMs
    this.batchGrowth = tuning.batchGrowth
    this.relayDelayMs = tuning.relayDelayMs
    this.presence = ctx.presenceFor(entry)
    this.tuning = tuning
  }

  /** Read at each flush: the window follows the document's audience. */
  get batchDelayMs(): number {
    return fanoutWindowMs(this.entry.refs, this.tuning)
  }
}
/**
 * A document's link hooks: closures made in one array share one context, and have no names
 * (tsx keeps a function's name with a property on each closure made where it has one).
 */
function hooksOf(ctx: ConnectionContext, entry: LoadedDoc) {
  return [
    (update: Uint8Array) => ctx.registry.persist(entry, update),
    () => entry.durable,
    () => whenStored(entry),
    (windowMs: number) => ctx.registry.joinBeforeFanout(entry, windowMs),
    (err: SyncError) =>
      ctx.log.info({ doc: entry.id, code: err.codeName, err: err.message }, 'link error'),
  ] as const
}

/**
 * Whether `data` looks like a token of ours (`signToken`: base64url, a dot, base64url) and is no
 * longer than `max`. A protocol message never does: its first byte is the protocol version.
 */
function isTokenShaped(data: Buffer, max: number): boolean {
  return (
    data.byteLength <= max &&
    data[0] !== PROTOCOL_VERSION &&
    /^[\w-]+\.[\w-]+$/.test(data.toString('latin1'))
  )
}

/**
 * What a connection holds until its link is made: the token's claims, the frames that came
 * before the link (and their count against the pre-authentication limits), the deadline.
 */
class Opening {
  claims: TokenClaims | null = null
  /** Frames received before the link exists (made on first use). */
  early: Uint8Array[] | null = null
  bytes = 0
  count = 0
  constructor(readonly deadline: ReturnType<typeof setTimeout>) {}
}

/**
 * Server side of one WebSocket. Created by the endpoint after the upgrade. It is its link's
 * `Channel` too.
 */
export class ServerConnection implements DirectChannel, HubSocketHandler {
  state: 'auth' | 'loading' | 'linked' | 'closed' = 'auth'
  /**
   * The socket's `bytesRead` when the heartbeat last pinged (-1: never). Unchanged at the next
   * beat means nothing came since, not even the pong: the peer is gone. (Read from the socket,
   * not counted by a 'pong' listener: a hub holds many sockets, and each listener is memory.)
   */
  readAtPing = -1
  private entry: LoadedDoc | null = null
  /** What the connection holds until its link is made (null from then on). */
  private opening: Opening | null
  /** The token grants writes (the link knows it too; `deliver` counts and limits writes). */
  private writer = false
  /** The link on this connection (DirectChannel: it receives our messages and our close). */
  private sink: LinkEndpoint | null = null
  private pausedUntil = 0
  private readonly messages: Bucket
  /** Event and presence budgets, made on first use (many connections never write). */
  private events: Bucket | null = null
  private presence: Bucket | null = null
  private childLog: Logger | null = null
  /** Events integrated from the message being delivered (the rate limit counts them). */
  integrated = 0
  /** Open mode, before the first frame: a token sent anyway is dropped (`onFrame`). */
  private firstFrame: boolean

  constructor(
    /** The WebSocket (its TCP socket's byte count tells the heartbeat the peer is alive). */
    readonly ws: HubSocket,
    public docId: string,
    readonly remote: string,
    queryToken: string | null,
    private readonly ctx: ConnectionContext,
  ) {
    const l = ctx.limits
    this.messages = new Bucket(l.messagesPerSecond, Math.max(l.messagesPerSecond, 1))
    ctx.metrics.connections.inc()
    ws.handler = this
    this.opening = new Opening(
      setTimeout(() => {
        if (this.state === 'auth' || this.state === 'loading') {
          this.refuse(CLOSE.AUTH_TIMEOUT, 'authentication timeout', 'auth-timeout')
        }
      }, l.authTimeoutMs),
    )
    // Until linked, what is sent counts against maxPreAuthBytes (`onFrame`); a message longer
    // than that is refused as it starts, before the socket buffers any of it.
    ws.maxPayload = Math.min(l.maxMessageBytes, l.maxPreAuthBytes)
    this.firstFrame = ctx.secret === undefined
    if (ctx.secret === undefined) this.authorize({ doc: docId, role: 'write', exp: Infinity })
    else if (queryToken !== null) this.checkToken(queryToken)
  }

  /** This connection's logger (a pino child with `doc` and `remote`), made on first use. */
  private get log(): Logger {
    this.childLog ??= this.ctx.log.child({ doc: this.docId, remote: this.remote })
    return this.childLog
  }

  /** Closes with `code` (valid WebSocket code) and a short reason; idempotent. */
  close(code = 1000, reason = ''): void {
    if (this.state === 'closed') return
    this.state = 'closed'
    this.endOpening()
    this.ws.close(code, reason) // cut off if the peer does not answer (websocket.ts)
    this.cleanup()
  }

  private refuse(code: number, reason: string, metric: string): void {
    this.ctx.metrics.refusals.inc({ reason: metric })
    this.log.info({ code, reason }, 'connection refused')
    this.close(code, reason)
  }

  private checkToken(token: string): void {
    const res = verifyToken(this.ctx.secret!, token, this.docId)
    if (!res.ok) return this.refuse(TOKEN_CLOSE[res.problem], `token ${res.problem}`, res.problem)
    this.authorize(res.claims)
  }

  private authorize(claims: TokenClaims): void {
    this.opening!.claims = claims
    this.state = 'loading'
    this.ctx.registry.acquire(this.docId).then(
      (entry) => void this.attach(entry),
      (err: unknown) => {
        if (this.state === 'closed') return
        if (err instanceof CapacityError) {
          this.refuse(CLOSE.TRY_AGAIN_LATER, 'server at document capacity', 'capacity')
        } else {
          this.log.error({ err }, 'document load failed')
          this.refuse(CLOSE.TRY_AGAIN_LATER, 'document unavailable', 'load-failed')
        }
      },
    )
  }

  private async attach(entry: LoadedDoc): Promise<void> {
    if (this.state === 'closed') return this.ctx.registry.release(entry)
    this.entry = entry
    this.docId = entry.id // one string per document, not one per connection's URL
    if (entry.needsSnapshot) {
      // A write was lost: events are in memory that storage lacks, and a new link's acks would
      // wait (`whenStored`) until a snapshot stores them. Store it first; while storage still
      // fails, refuse the connection (retryable) rather than leave the client waiting.
      try {
        await this.ctx.registry.compact(entry)
      } catch (err) {
        this.log.error({ err }, 'storage still failing; connection refused')
        return this.refuse(CLOSE.TRY_AGAIN_LATER, 'storage unavailable', 'storage-failing')
      }
      if ((this.state as string) === 'closed') return // closed while storing
    }
    const opening = this.endOpening()!
    const claims = opening.claims!
    this.writer = claims.role === 'write'
    // The link attaches itself (attachLink) and ends when this connection closes.
    const user = claims.user
    boundLink(
      entry.replica,
      this,
      linkOptionsFor(this.ctx, entry, claims.role === 'read'),
      user === undefined ? anonymousIdentity : { user },
    )
    this.state = 'linked'
    this.ws.maxPayload = this.ctx.limits.maxMessageBytes
    for (const m of opening.early ?? []) {
      if (this.state !== 'linked') break
      this.deliver(m)
    }
  }

  // Channel (the link's side of this socket). The link attaches through `attachLink`.
  attachLink(link: LinkEndpoint): void {
    this.sink = link
  }
  onMessage(): void {
    throw new Error('a ServerConnection delivers to its link through attachLink')
  }
  onClose(): void {
    throw new Error('a ServerConnection delivers to its link through attachLink')
  }

  /** Ends the opening (its deadline cleared, its early frames dropped) and returns it. */
  private endOpening(): Opening | null {
    const opening = this.opening
    this.opening = null
    if (opening !== null) clearTimeout(opening.deadline)
    return opening
  }

  /**
   * At each heartbeat: the link says it is alive (a browser client cannot see the pings, and
   * takes a link it hears nothing on for dead: client/connection.ts `silenceMs`).
   */
  keepAlive(): void {
    keepingAlive = true
    try {
      this.sink?.keepAlive()
    } finally {
      keepingAlive = false
    }
  }

  onOversize(): void {
    if (this.state === 'auth' || this.state === 'loading') {
      this.refuse(CLOSE.BAD_REQUEST, 'too much data before authentication', 'pre-auth')
    }
  }

  onSocketError(err: Error): void {
    this.log.debug({ err }, 'socket error')
  }

  onFrame(data: Buffer, isBinary: boolean): void {
    if (this.state === 'closed') return
    if (this.firstFrame) {
      this.firstFrame = false
      // Open mode: a client given a token sends it first all the same; with no secret to check
      // it against, it is dropped (its claims grant nothing here: every connection may write).
      if (isTokenShaped(data, this.ctx.limits.maxPreAuthBytes)) return
    }
    if (this.state === 'linked') {
      if (!isBinary) return this.refuse(CLOSE.UNSUPPORTED_DATA, 'text frame', 'text-frame')
      return this.deliver(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))
    }
    const opening = this.opening! // 'auth' or 'loading'
    opening.bytes += data.byteLength
    opening.count++
    if (
      opening.bytes > this.ctx.limits.maxPreAuthBytes ||
      opening.count > this.ctx.limits.maxPreAuthMessages
    ) {
      return this.refuse(CLOSE.BAD_REQUEST, 'too much data before authentication', 'pre-auth')
    }
    if (this.state === 'auth') {
      // Without `?token=` the first frame is the token (text or UTF-8 bytes). A protocol
      // message instead (first byte = protocol version, never in a base64url token) means the
      // client has no token.
      if (data.byteLength > 0 && data[0] === PROTOCOL_VERSION) return this.checkToken('')
      return this.checkToken(data.toString('utf8'))
    }
    if (!isBinary) return this.refuse(CLOSE.UNSUPPORTED_DATA, 'text frame', 'text-frame')
    ;(opening.early ??= []).push(new Uint8Array(data)) // a copy: a view would keep its whole chunk
  }

  /** One binary message to the link, within the rate and size limits. */
  private deliver(m: Uint8Array): void {
    const entry = this.entry!
    const limits = this.ctx.limits
    const type = m.length > 1 ? m[1] : -1
    const writing = type === MSG.EVENTS && this.writer
    if (writing && entry.doc.length >= limits.maxDocumentChars) {
      return this.refuse(CLOSE.DOCUMENT_TOO_LARGE, 'document size limit reached', 'doc-size')
    }
    let pause = this.messages.take(1)
    if (type === MSG.PRESENCE) {
      const l = limits.presencePerSecond
      this.presence ??= new Bucket(l, Math.max(l, 1))
      pause = Math.max(pause, this.presence.take(1))
    }
    this.integrated = 0
    const fan = this.ctx.fanoutFor(entry)
    if (fan.receivedAt === null && entry.refs > 1) {
      fan.receivedAt = performance.now()
      fan.from = this
    }
    delivering = this
    try {
      this.sink?.receive(m)
    } catch (err) {
      this.log.error({ err }, 'message handling failed')
      return this.close(closeCodeFor(12), 'internal error')
    } finally {
      delivering = null
    }
    if (writing) {
      const n = this.integrated
      if (n > 0) {
        this.ctx.metrics.eventsReceived.inc(n)
        this.events ??= new Bucket(limits.eventsPerSecond, limits.eventBurst)
        pause = Math.max(pause, this.events.take(n))
      }
      if (entry.doc.length > limits.maxDocumentChars) {
        return this.refuse(CLOSE.DOCUMENT_TOO_LARGE, 'document size limit reached', 'doc-size')
      }
    }
    if (pause > 0) this.throttle(pause)
  }

  /** Open, and the peer reads what we send: else closed, or dropped as a slow reader (A9). */
  private writable(): boolean {
    if (this.state === 'closed') return false
    if (this.ws.bufferedAmount <= this.ctx.limits.maxSendBufferBytes) return true
    this.refuse(CLOSE.SLOW_READER, 'send buffer full', 'slow-reader')
    this.ws.terminate()
    return false
  }

  /** Answers a ping with its data (RFC 6455 5.5.3). */
  onPing(data: Buffer): void {
    if (this.writable()) this.ws.pong(data)
  }

  /**
   * Stops reading the socket for good (shutdown): nothing more is integrated while the
   * document's writes drain, and the peer resends what it sent meanwhile to the next server.
   */
  stopReading(): void {
    this.pausedUntil = Infinity // no throttle timer resumes it
    this.ws.pause()
  }

  /** Stops reading the socket for `ms` (TCP backpressure slows the sender, nothing is lost). */
  private throttle(ms: number): void {
    // Whole ms: a field of small integers needs no number box per connection.
    const until = Math.ceil(performance.now() + ms)
    if (until <= this.pausedUntil) return
    this.pausedUntil = until
    this.ctx.metrics.refusals.inc({ reason: 'throttled' })
    this.ws.pause()
    // A later throttle's timer resumes instead. (A timer may fire up to a ms early by
    // `performance.now()`, and `pausedUntil` is rounded up to a whole ms: 2 ms of slack.)
    setTimeout(() => {
      if (this.state !== 'closed' && performance.now() >= this.pausedUntil - 2) this.ws.resume()
    }, ms)
  }

  send(m: Uint8Array): void {
    if (!this.writable()) return
    if (keepingAlive) return this.ws.send(m) // not a delivery, nor fan-out
    const fan = this.entry === null ? null : this.ctx.fanoutFor(this.entry)
    if (fan !== null && fan.receivedAt !== null && fan.from !== this) {
      const seconds = (performance.now() - fan.receivedAt) / 1000
      // Over 10 s means the receipt had nothing to fan out (e.g. only presence or acks).
      if (seconds < 10) this.ctx.metrics.fanoutSeconds.observe(seconds)
      fan.receivedAt = null
      fan.from = null
    }
    this.ctx.metrics.messagesDelivered.inc()
    this.ws.send(m)
  }

  onSocketClose(): void {
    if (this.state !== 'closed') {
      this.state = 'closed'
      this.endOpening()
      this.cleanup()
    }
    this.ctx.metrics.connections.dec()
    this.ctx.closed(this)
  }

  private cleanup(): void {
    const sink = this.sink
    this.sink = null
    sink?.channelClosed()
    if (this.entry !== null) {
      this.ctx.registry.release(this.entry)
      this.entry = null
    }
  }
}
