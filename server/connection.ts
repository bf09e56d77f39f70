/**
 * One WebSocket connection to one document: authentication, the pre-auth and loading buffer,
 * the sync `link`, and the per-connection limits (rate, document size, slow reader).
 *
 * States: `auth` (waiting for a token) -> `loading` (document being acquired) -> `linked` ->
 * `closed`. Invariants: nothing a socket sends before authentication is decoded, only counted
 * (bytes, messages) and, after auth, replayed in order to the link; frames after close are
 * ignored (A11); every close uses a valid code (F1); the document is released exactly once.
 */
import type { WebSocket } from 'ws'
import type { Channel } from '../shared/channels.ts'
import { MSG, PROTOCOL_VERSION, closeCodeFor } from '../shared/protocol.ts'
import { link, type Link, type LinkOptions } from '../shared/sync.ts'
import { summarizeUpdate } from '../shared/update-summary.ts'
import { anonymousUser, verifyToken, type TokenClaims, type TokenProblem } from './auth.ts'
import { CLOSE } from './close-codes.ts'
import { CapacityError, type DocumentRegistry, type LoadedDoc } from './documents.ts'
import type { Limits } from './limits.ts'
import type { Logger } from './log.ts'
import type { ServerMetrics } from './metrics.ts'
import type { Presence } from '../shared/presence.ts'

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
}

/** The link batching options the server sets (shared/sync.ts `LinkOptions`). */
export type LinkTuning = Pick<LinkOptions, 'batchDelayMs' | 'maxBatchDelayMs' | 'relayDelayMs'>

/**
 * Server links favour fan-out latency: a star hub relays every event it receives, so the sync
 * defaults meant for meshes (relay delay 3 x 20 ms, a batch window growing to 500 ms under
 * load) would add up to half a second per hop. Events arriving together still share a batch.
 */
export const SERVER_LINK_TUNING: LinkTuning = Object.freeze({
  batchDelayMs: 5,
  maxBatchDelayMs: 40,
  relayDelayMs: 0,
})

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

/** A token bucket: `take(n)` returns how many ms to pause to stay within the rate (0: none). */
class Bucket {
  private tokens: number
  private last = performance.now()
  constructor(
    private readonly rate: number,
    private readonly burst: number,
  ) {
    this.tokens = burst
  }
  take(n: number): number {
    const now = performance.now()
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.rate)
    this.last = now
    this.tokens -= n
    return this.tokens >= 0 || this.rate === 0 ? 0 : Math.ceil((-this.tokens / this.rate) * 1000)
  }
}

/** Server side of one WebSocket. Created by the endpoint after the upgrade. */
export class ServerConnection {
  state: 'auth' | 'loading' | 'linked' | 'closed' = 'auth'
  /** Set by the heartbeat: false once a ping went out with no pong since. */
  alive = true
  private entry: LoadedDoc | null = null
  private link: Link | null = null
  private claims: TokenClaims | null = null
  private handler: ((m: Uint8Array) => void) | null = null
  private closeHandlers: (() => void)[] = []
  private readonly early: Uint8Array[] = []
  private earlyBytes = 0
  private earlyCount = 0
  private readonly authTimer: ReturnType<typeof setTimeout>
  private pausedUntil = 0
  private readonly events: Bucket
  private readonly messages: Bucket
  private readonly presence: Bucket
  private childLog: Logger | null = null
  /** Events integrated from the message being delivered (the rate limit counts them). */
  private integrated = 0

  constructor(
    readonly ws: WebSocket,
    readonly docId: string,
    readonly remote: string,
    queryToken: string | null,
    private readonly ctx: ConnectionContext,
  ) {
    const l = ctx.limits
    this.events = new Bucket(l.eventsPerSecond, l.eventBurst)
    this.messages = new Bucket(l.messagesPerSecond, Math.max(l.messagesPerSecond, 1))
    this.presence = new Bucket(l.presencePerSecond, Math.max(l.presencePerSecond, 1))
    ctx.metrics.connections.inc()
    ws.on('message', (data, isBinary) => this.onFrame(data as Buffer, isBinary))
    ws.on('close', () => this.onSocketClose())
    ws.on('error', (err) => this.log.debug({ err }, 'socket error'))
    ws.on('pong', () => (this.alive = true))
    this.authTimer = setTimeout(() => {
      if (this.state === 'auth' || this.state === 'loading') {
        this.refuse(CLOSE.AUTH_TIMEOUT, 'authentication timeout', 'auth-timeout')
      }
    }, l.authTimeoutMs)
    if (ctx.secret === undefined) this.authorize({ doc: docId, role: 'write', exp: Infinity })
    else if (queryToken !== null) this.checkToken(queryToken)
  }

  /** This connection's logger (a pino child with `doc` and `remote`), made on first use. */
  private get log(): Logger {
    this.childLog ??= this.ctx.log.child({ doc: this.docId, remote: this.remote })
    return this.childLog
  }

  /** Closes with `code` (valid WebSocket code) and a short reason; idempotent. */
  close(code: number, reason: string): void {
    if (this.state === 'closed') return
    this.state = 'closed'
    clearTimeout(this.authTimer)
    try {
      this.ws.close(code, reason.slice(0, 120))
    } catch {
      this.ws.terminate()
    }
    // A reader that does not read may never take the close frame.
    setTimeout(() => this.ws.terminate(), 2000).unref?.()
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
    this.claims = claims
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
    if (entry.needsSnapshot) {
      // A write was lost: events are in memory that storage lacks. A new link would ack them
      // (resent events integrate nothing, so nothing is persisted) unless they are stored first.
      try {
        await this.ctx.registry.compact(entry)
      } catch (err) {
        this.log.error({ err }, 'storage still failing; connection refused')
        return this.refuse(CLOSE.TRY_AGAIN_LATER, 'storage unavailable', 'storage-failing')
      }
      if ((this.state as string) === 'closed') return // closed while storing
    }
    clearTimeout(this.authTimer)
    const claims = this.claims!
    const channel: Channel = {
      send: (m) => this.send(m),
      onMessage: (h) => void (this.handler = h),
      onClose: (h) => void this.closeHandlers.push(h),
      close: (code, reason) => this.close(code ?? 1000, reason ?? ''),
    }
    this.link = link(entry.replica, channel, {
      readOnly: claims.role === 'read',
      persist: (update) => this.ctx.registry.persist(entry, update),
      durableVersion: () => entry.durable,
      maxMessageBytes: this.ctx.limits.maxMessageBytes,
      ...this.ctx.linkTuning,
      presence: this.ctx.presenceFor(entry),
      identity: { user: claims.user ?? anonymousUser() },
      onIntegrated: (update) => void (this.integrated += summarizeUpdate(update)?.events ?? 0),
      onError: (err) => this.log.info({ code: err.codeName, err: err.message }, 'link error'),
    })
    this.state = 'linked'
    for (const m of this.early.splice(0)) {
      if (this.state !== 'linked') break
      this.deliver(m)
    }
  }

  private onFrame(data: Buffer, isBinary: boolean): void {
    if (this.state === 'closed') return
    if (this.state === 'linked') {
      if (!isBinary) return this.refuse(CLOSE.UNSUPPORTED_DATA, 'text frame', 'text-frame')
      return this.deliver(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))
    }
    this.earlyBytes += data.byteLength
    this.earlyCount++
    if (
      this.earlyBytes > this.ctx.limits.maxPreAuthBytes ||
      this.earlyCount > this.ctx.limits.maxPreAuthMessages
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
    this.early.push(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))
  }

  /** One binary message to the link, within the rate and size limits. */
  private deliver(m: Uint8Array): void {
    const entry = this.entry!
    const limits = this.ctx.limits
    const type = m.length > 1 ? m[1] : -1
    const writing = type === MSG.EVENTS && this.claims!.role === 'write'
    if (writing && entry.doc.length >= limits.maxDocumentChars) {
      return this.refuse(CLOSE.DOCUMENT_TOO_LARGE, 'document size limit reached', 'doc-size')
    }
    let pause = this.messages.take(1)
    if (type === MSG.PRESENCE) pause = Math.max(pause, this.presence.take(1))
    this.integrated = 0
    const fan = this.ctx.fanoutFor(entry)
    if (fan.receivedAt === null && entry.refs > 1) {
      fan.receivedAt = performance.now()
      fan.from = this
    }
    try {
      this.handler?.(m)
    } catch (err) {
      this.log.error({ err }, 'message handling failed')
      return this.close(closeCodeFor(12), 'internal error')
    }
    if (writing) {
      const n = this.integrated
      if (n > 0) {
        this.ctx.metrics.eventsReceived.inc(n)
        pause = Math.max(pause, this.events.take(n))
      }
      if (entry.doc.length > limits.maxDocumentChars) {
        return this.refuse(CLOSE.DOCUMENT_TOO_LARGE, 'document size limit reached', 'doc-size')
      }
    }
    if (pause > 0) this.throttle(pause)
  }

  /** Stops reading the socket for `ms` (TCP backpressure slows the sender, nothing is lost). */
  private throttle(ms: number): void {
    const until = performance.now() + ms
    if (until <= this.pausedUntil) return
    this.pausedUntil = until
    this.ctx.metrics.refusals.inc({ reason: 'throttled' })
    this.ws.pause()
    setTimeout(() => {
      if (this.state !== 'closed' && performance.now() >= this.pausedUntil - 1) this.ws.resume()
    }, ms)
  }

  private send(m: Uint8Array): void {
    if (this.state === 'closed') return
    if (this.ws.bufferedAmount > this.ctx.limits.maxSendBufferBytes) {
      this.refuse(CLOSE.SLOW_READER, 'send buffer full', 'slow-reader')
      this.ws.terminate()
      return
    }
    const fan = this.entry === null ? null : this.ctx.fanoutFor(this.entry)
    if (fan !== null && fan.receivedAt !== null && fan.from !== this) {
      const seconds = (performance.now() - fan.receivedAt) / 1000
      // Over 10 s means the receipt had nothing to fan out (e.g. only presence or acks).
      if (seconds < 10) this.ctx.metrics.fanoutSeconds.observe(seconds)
      fan.receivedAt = null
      fan.from = null
    }
    this.ctx.metrics.messagesDelivered.inc()
    this.ws.send(m, { binary: true })
  }

  private onSocketClose(): void {
    if (this.state !== 'closed') {
      this.state = 'closed'
      clearTimeout(this.authTimer)
      this.cleanup()
    }
    this.ctx.metrics.connections.dec()
  }

  private cleanup(): void {
    this.early.length = 0
    const hs = this.closeHandlers.splice(0)
    for (const h of hs) h()
    this.link?.close()
    this.link = null
    if (this.entry !== null) {
      this.ctx.registry.release(this.entry)
      this.entry = null
    }
  }
}
