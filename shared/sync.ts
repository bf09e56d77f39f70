/**
 * `link(doc, channel)`: the replication state machine of one link (PROTOCOL.md).
 *
 * Owns, per link: the wire states of both directions, `peerKnown` (a lower bound of
 * what the peer holds: its HELLO, every have/ack it announced, everything we sent),
 * what the peer acknowledged, the outgoing batch throttle, the ack pipeline through
 * `persist`, and the gap timer that asks for missing events.
 *
 * Invariants: every vv we reason with is a downset, so `encodeUpdate(peerKnown)`
 * never carries events whose parents the peer lacks; a message is fully decoded
 * and validated before anything is applied; acks are cumulative and sent in
 * order, each only after the persist of every batch it covers has resolved.
 * Cost per flush: one `doc.version()` (O(agents)) and, when the peer lacks
 * something, one `doc.encodeUpdate(peerKnown)`.
 */

import type { Channel } from './channels.ts'
import {
  SyncError,
  SYNC_ERRORS,
  WireState,
  closeCodeFor,
  copyVV,
  decodeMessage,
  emptyVV,
  encodeMessage,
  errorName,
  maxVV,
  vvCovers,
  type Message,
} from './protocol.ts'
import type { Presence, PresencePort } from './presence.ts'
import type { MutableVV, Replica, VersionVector } from './replica.ts'

/** Timers and time, injectable so a simulator can run links on virtual time. */
export interface Clock {
  now(): number
  setTimeout(fn: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
}

export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
}

export interface Identity {
  readonly user?: string
  readonly name?: string
  readonly color?: string
}

/** Options of `link`; every field is optional (see PROTOCOL.md for the semantics). */
export interface LinkOptions {
  /** Refuse the peer's edits (ERROR READ_ONLY, nothing applied); reads still flow. */
  readOnly?: boolean
  /** Stores each batch of new events from this peer; the ack waits for it. */
  persist?: (update: Uint8Array) => Promise<void>
  /** What this side holds durably (the peer's ack baseline in HELLO). Default `doc.version()`. */
  durableVersion?: () => VersionVector
  /** Largest incoming message. Default 16 MiB. */
  maxMessageBytes?: number
  /** Largest `doc.pendingCount` tolerated after applying a batch. Default 100,000. */
  maxPendingEvents?: number
  /** Distinct agent ids per link direction. Default 100,000. */
  maxAgents?: number
  /** Bounded delay of the outgoing batch throttle. Default 20 ms. */
  batchDelayMs?: number
  /**
   * Under sustained traffic the batch window doubles per flush up to this bound (the
   * longest an event waits); after a quiet stretch of this length it drops back to
   * `batchDelayMs`. Default 500 ms.
   */
  maxBatchDelayMs?: number
  /** Extra delay before relaying events that came from another link. Default 3 x batchDelayMs. */
  relayDelayMs?: number
  /** Extra delay of a plain ack (no persist), so it can ride along with events. Default 0. */
  ackDelayMs?: number
  /** How long events may wait for missing parents before NEED is sent. Default 1000 ms. */
  gapTimeoutMs?: number
  /** Shared presence state of this doc. */
  presence?: Presence
  /** Server-bound identity of this link's peer (overrides its presence claims). */
  identity?: Identity
  /** Called on a protocol error on this link (before it closes, for fatal codes). */
  onError?: (err: SyncError) => void
  /** Time source; default real time. */
  clock?: Clock
  /** Replica id announced in HELLO; default the presence id, else the doc's agent. */
  id?: string
}

type LinkEvents = {
  synced: () => void
  ack: (acked: VersionVector) => void
  error: (err: SyncError) => void
  close: () => void
}

/** One live link. */
export interface Link {
  /** Stops the link and closes the channel. Idempotent. */
  close(): void
  /** Resolves once the peer's state is merged and our events it lacked are acknowledged. */
  readonly synced: Promise<void>
  readonly closed: boolean
  /** True once the peer's HELLO has arrived. */
  readonly open: boolean
  /** The peer's replica id from its HELLO (undefined before). */
  readonly peerId: string | undefined
  /** A lower bound of what the peer holds. */
  peerVersion(): VersionVector
  /** What the peer has acknowledged (integrated, and persisted if it persists). */
  ackedVersion(): VersionVector
  /** Wire statistics of this link. */
  readonly stats: LinkStats
  on<E extends keyof LinkEvents>(event: E, handler: LinkEvents[E]): () => void
}

export interface LinkStats {
  messagesSent: number
  bytesSent: number
  messagesReceived: number
  bytesReceived: number
  eventMessagesSent: number
}

let nextLinkNo = 0

/** Updates at least this big count as a catch-up batch (prompt ack, slower relay). */
const BIG_UPDATE_BYTES = 1024
/** A handshake owing the peer at least this many events is a big catch-up (staggered). */
const BIG_CATCHUP_EVENTS = 256

/** Events in `mine` that `theirs` lacks (per-agent counts). */
function missingCount(mine: VersionVector, theirs: VersionVector): number {
  let n = 0
  for (const a in mine) n += Math.max(0, mine[a]! - (theirs[a] ?? 0))
  return n
}

/** A stable number in [0, 1) per (us, peer): deterministic, different across link pairs. */
function pairJitter(a: string, b: string): number {
  let h = 2166136261
  for (const ch of `${a}\u0000${b}`) h = Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0
  return h / 4294967296
}

/** Replicates `doc` over `channel` until either side closes it (API.md "Sync over any link"). */
export function link(doc: Replica, channel: Channel, opts: LinkOptions = {}): Link {
  return new LinkImpl(doc, channel, opts)
}

class LinkImpl implements Link {
  private readonly out: WireState
  private readonly inn: WireState
  private readonly clock: Clock
  private readonly batchDelay: number
  private readonly relayDelay: number
  private readonly ackDelay: number
  private readonly maxBatchDelay: number
  private readonly maxBytes: number
  private readonly maxPending: number
  private readonly gapTimeout: number
  private readonly handlers: { [E in keyof LinkEvents]: LinkEvents[E][] } = {
    synced: [],
    ack: [],
    error: [],
    close: [],
  }
  private peerHello: Extract<Message, { type: 'hello' }> | null = null
  private peerKnown: MutableVV = emptyVV()
  private peerAcked: MutableVV = emptyVV()
  private target: MutableVV = emptyVV()
  private pendingAck: MutableVV | null = null
  private lastFlush = -Infinity
  private window: number
  private flushTimer: unknown = null
  private flushAt = Infinity
  private gapTimer: unknown = null
  private durableTimer: unknown = null
  private collecting: Uint8Array[] | null = null
  private persistChain: Promise<void> = Promise.resolve()
  private unsubscribe: () => void
  private presencePort: ReturnType<Presence['attach']> | null = null
  private syncedDone = false
  private resolveSynced!: () => void
  private rejectSynced!: (e: Error) => void
  private closeError: SyncError | null = null
  readonly synced: Promise<void>
  closed = false
  readonly stats: LinkStats = {
    messagesSent: 0,
    bytesSent: 0,
    messagesReceived: 0,
    bytesReceived: 0,
    eventMessagesSent: 0,
  }
  private readonly name = `link${nextLinkNo++}`
  private myId = ''

  constructor(
    private readonly doc: Replica,
    private readonly channel: Channel,
    private readonly opts: LinkOptions,
  ) {
    this.clock = opts.clock ?? realClock
    this.batchDelay = opts.batchDelayMs ?? 20
    this.relayDelay = opts.relayDelayMs ?? 3 * this.batchDelay
    this.ackDelay = opts.ackDelayMs ?? 0
    this.maxBatchDelay = Math.max(this.batchDelay, opts.maxBatchDelayMs ?? 500)
    this.window = this.batchDelay
    this.maxBytes = opts.maxMessageBytes ?? 16 << 20
    this.maxPending = opts.maxPendingEvents ?? 100_000
    this.gapTimeout = opts.gapTimeoutMs ?? 1000
    this.out = new WireState(opts.maxAgents)
    this.inn = new WireState(opts.maxAgents)
    this.synced = new Promise<void>((res, rej) => {
      this.resolveSynced = res
      this.rejectSynced = rej
    })
    this.synced.catch(() => {}) // a link closing before sync is reported via 'error'/'close'
    this.unsubscribe = doc.on('update', (update, origin) => {
      if (origin === this && this.collecting) this.collecting.push(update)
      // Local edits go out at once (throttled); events relayed from another link wait
      // `relayDelayMs`, so the peer's own announcements can spare a duplicate.
      // Events from this very peer only need an ack, which is not urgent without persist.
      if (!(origin instanceof LinkImpl)) return this.scheduleFlush(0)
      // A big batch (a heal, a catch-up) is announced at once on every link, and relayed
      // only after a longer wait: peers that got it by another path say so in time.
      const big = update.length >= BIG_UPDATE_BYTES
      if (big) this.promptAck()
      if (origin === this) this.scheduleFlush(this.ackDelay)
      else this.scheduleFlush(big ? 4 * this.relayDelay : this.relayDelay)
      this.checkSynced()
    })
    channel.onMessage((m) => this.receive(m))
    channel.onClose(() => this.shutdown())
    const have = doc.version()
    const id = (this.myId =
      opts.id ?? opts.presence?.id ?? (doc as { agent?: unknown }).agent?.toString() ?? this.name)
    this.send({
      type: 'hello',
      readOnly: opts.readOnly === true,
      id,
      have,
      durable: opts.durableVersion?.() ?? have,
    })
  }

  get open(): boolean {
    return this.peerHello !== null && !this.closed
  }
  get peerId(): string | undefined {
    return this.peerHello?.id
  }
  peerVersion(): VersionVector {
    return copyVV(this.peerKnown)
  }
  ackedVersion(): VersionVector {
    return copyVV(this.peerAcked)
  }

  on<E extends keyof LinkEvents>(event: E, handler: LinkEvents[E]): () => void {
    const list = this.handlers[event] as LinkEvents[E][]
    list.push(handler)
    return () => {
      const i = list.indexOf(handler)
      if (i >= 0) list.splice(i, 1)
    }
  }

  private emit<E extends keyof LinkEvents>(event: E, ...args: Parameters<LinkEvents[E]>): void {
    for (const h of [...this.handlers[event]]) (h as (...a: unknown[]) => void)(...args)
  }

  close(): void {
    if (this.closed) return
    this.channel.close(1000, 'link closed')
    this.shutdown()
  }

  private shutdown(): void {
    if (this.closed) return
    this.closed = true
    this.unsubscribe()
    if (this.flushTimer !== null) this.clock.clearTimeout(this.flushTimer)
    if (this.gapTimer !== null) this.clock.clearTimeout(this.gapTimer)
    if (this.durableTimer !== null) this.clock.clearTimeout(this.durableTimer)
    this.flushTimer = this.gapTimer = null
    this.flushAt = Infinity
    this.presencePort?.detach()
    this.presencePort = null
    if (!this.syncedDone) {
      this.rejectSynced(this.closeError ?? new SyncError('GOING_AWAY', 'link closed before sync'))
    }
    this.emit('close')
  }

  private send(msg: Message): void {
    if (this.closed) return
    const bytes = encodeMessage(msg, this.out)
    this.stats.messagesSent++
    this.stats.bytesSent += bytes.length
    if (msg.type === 'events') this.stats.eventMessagesSent++
    this.channel.send(bytes)
  }

  /** Reports an error; sends it to the peer unless it came from there; closes if fatal. */
  private fail(err: SyncError): void {
    if (this.closed) return
    if (err.fatal) this.closeError = err
    this.emit('error', err)
    this.opts.onError?.(err)
    if (!err.remote)
      this.send({ type: 'error', code: err.code, message: err.message.slice(0, 1000) })
    if (err.fatal) {
      this.channel.close(closeCodeFor(err.code), err.codeName)
      this.shutdown()
    }
  }

  // ------------------------------------------------------------ incoming

  private receive(bytes: Uint8Array): void {
    if (this.closed) return
    this.stats.messagesReceived++
    this.stats.bytesReceived += bytes.length
    try {
      const msg = decodeMessage(bytes, this.inn, this.maxBytes)
      this.handle(msg)
    } catch (e) {
      this.fail(
        e instanceof SyncError ? e : new SyncError('INTERNAL', (e as Error)?.message ?? String(e)),
      )
    }
  }

  private handle(msg: Message): void {
    if (msg.type === 'error') {
      const name = errorName(msg.code) ?? 'INTERNAL'
      return this.fail(new SyncError(name, `peer reported code ${msg.code}: ${msg.message}`, true))
    }
    if (msg.type === 'hello') {
      if (this.peerHello) throw new SyncError('STATE', 'second HELLO on one link')
      this.peerHello = msg
      this.peerKnown = copyVV(msg.have)
      this.peerAcked = copyVV(msg.durable)
      // Events we hold that the peer lacks must be acked before `synced`; a read-only
      // peer will never take ours, so then only its state has to be merged.
      this.target = msg.readOnly ? emptyVV() : copyVV(this.doc.version())
      if (this.opts.presence) {
        this.presencePort = this.opts.presence.attach({
          peerId: msg.id,
          identity: this.opts.identity,
          send: (entries) => this.send({ type: 'presence', entries }),
        } satisfies PresencePort)
      }
      // A big catch-up (a healing partition reaches several links at once) is staggered
      // per link pair, so the first batches' prompt acks can spare the later ones.
      const lack = missingCount(this.doc.version(), msg.have)
      if (lack >= BIG_CATCHUP_EVENTS && !msg.readOnly) {
        this.scheduleFlush(4 * this.relayDelay * pairJitter(this.myId, msg.id))
      } else this.flush()
      this.watchDurable()
      this.checkSynced()
      return
    }
    if (!this.peerHello) throw new SyncError('STATE', `${msg.type} before HELLO`)
    switch (msg.type) {
      case 'events':
        this.peerKnown = maxVV(this.peerKnown, msg.have)
        if (msg.ack) this.onAck(msg.ack)
        this.onEvents(msg.update, msg.have)
        break
      case 'ack':
        this.onAck(msg.ack)
        break
      case 'need':
        // A flood of NEEDs costs at most one diff per batch window (the flush throttle).
        this.peerKnown = copyVV(msg.have)
        this.scheduleFlush()
        break
      case 'presence':
        this.presencePort?.receive(msg.entries)
        break
    }
    this.checkSynced()
  }

  private onAck(ack: VersionVector): void {
    this.peerAcked = maxVV(this.peerAcked, ack)
    this.peerKnown = maxVV(this.peerKnown, ack)
    this.emit('ack', copyVV(this.peerAcked))
  }

  private onEvents(update: Uint8Array, have: VersionVector): void {
    if (this.opts.readOnly) {
      if (!vvCovers(this.doc.version(), have)) {
        this.fail(new SyncError('READ_ONLY', 'this link is read-only: edits refused'))
      }
      return
    }
    this.collecting = []
    try {
      this.doc.applyUpdate(update, this)
    } catch (e) {
      this.collecting = null
      throw new SyncError('BAD_UPDATE', (e as Error)?.message ?? String(e))
    }
    const batch = this.collecting
    this.collecting = null
    const pending = this.doc.pendingCount
    if (pending > this.maxPending) {
      throw new SyncError(
        'PENDING_OVERFLOW',
        `${pending} events wait for parents (max ${this.maxPending})`,
      )
    }
    if (pending > 0) this.armGapTimer()
    const ackVV = copyVV(this.doc.version())
    const persist = this.opts.persist
    if (!persist) return this.queueAck(ackVV)
    if (batch.length === 0) {
      // Nothing new, but an earlier persist may be in flight: keep acks in order.
      this.persistChain = this.persistChain.then(() => this.queueAck(ackVV))
      return
    }
    this.persistChain = this.persistChain.then(async () => {
      for (const u of batch) {
        if (this.closed) return
        try {
          await persist(u)
        } catch (e) {
          this.fail(new SyncError('PERSIST_FAILED', (e as Error)?.message ?? String(e)))
          throw e
        }
      }
      this.queueAck(ackVV)
    })
    this.persistChain.catch(() => {})
  }

  private queueAck(ack: MutableVV): void {
    if (this.closed) return
    this.pendingAck = this.pendingAck ? maxVV(this.pendingAck, ack) : ack
    // A durable ack is awaited (the peer's `synced`); a plain one can wait to ride along.
    this.scheduleFlush(this.opts.persist ? 0 : this.ackDelay)
  }

  /**
   * The peer may hold events we have in memory but not yet stored (a persist still
   * running for another link): it will not resend them, so ack them once
   * `durableVersion` covers them, polling until it does.
   */
  private watchDurable(): void {
    const durableOf = this.opts.durableVersion
    if (!durableOf || !this.opts.persist || !this.peerHello) return
    const theirs = this.peerHello.have
    const tick = () => {
      this.durableTimer = null
      if (this.closed) return
      const mine = this.doc.version()
      const durable = durableOf()
      for (const a in theirs) {
        const need = Math.min(theirs[a]!, mine[a] ?? 0)
        if ((durable[a] ?? 0) < need) {
          this.durableTimer = this.clock.setTimeout(tick, this.gapTimeout / 4)
          return
        }
      }
      if (!vvCovers(this.out.ack, durable)) this.scheduleFlush()
    }
    tick()
  }

  private armGapTimer(): void {
    if (this.gapTimer !== null) return
    this.gapTimer = this.clock.setTimeout(() => {
      this.gapTimer = null
      if (this.closed || this.doc.pendingCount === 0) return
      this.send({ type: 'need', have: this.doc.version() })
      this.armGapTimer()
    }, this.gapTimeout)
  }

  // ------------------------------------------------------------ outgoing

  /** Flushes no earlier than `minWaitMs` from now, nor within the batch window of the last flush. */
  private scheduleFlush(minWaitMs = 0): void {
    if (this.closed || !this.peerHello) return
    const now = this.clock.now()
    const at = Math.max(now + minWaitMs, this.lastFlush + this.window)
    if (this.flushTimer !== null) {
      if (this.flushAt <= at) return
      this.clock.clearTimeout(this.flushTimer)
    }
    this.flushAt = at
    this.flushTimer = this.clock.setTimeout(() => {
      this.flushTimer = null
      this.flushAt = Infinity
      this.flush()
    }, at - now)
  }

  /** Sends what the peer lacks (one batch) and any ack due. */
  private flush(): void {
    if (this.closed || !this.peerHello) return
    const now = this.clock.now()
    // Busy link (flushed recently): widen the window; quiet: back to the minimum.
    this.window =
      now - this.lastFlush <= this.maxBatchDelay
        ? Math.min(this.maxBatchDelay, this.window * 2)
        : this.batchDelay
    this.lastFlush = now
    const vv = this.doc.version()
    // Without persist, integrated = acknowledged: the ack is our version, which also
    // tells the peer what not to send us (gossip that saves duplicates in meshes).
    let ack = this.opts.persist ? this.pendingAck : vv
    this.pendingAck = null
    // Events stored by other means (other links, a snapshot) count too.
    const durable = this.opts.durableVersion?.()
    if (durable && this.opts.persist) ack = ack ? maxVV(ack, durable) : copyVV(durable)
    if (ack && vvCovers(this.out.ack, ack)) ack = null
    if (!this.peerHello.readOnly && !vvCovers(this.peerKnown, vv)) {
      const update = this.doc.encodeUpdate(this.peerKnown)
      this.peerKnown = maxVV(this.peerKnown, vv)
      this.send({ type: 'events', have: vv, ack, update })
    } else if (ack) {
      this.send({ type: 'ack', ack })
    }
  }

  /** Sends our version as an ACK now (no persist only), unless the peer already has it. */
  private promptAck(): void {
    if (this.closed || !this.peerHello || this.opts.persist) return
    const vv = this.doc.version()
    if (!vvCovers(this.out.ack, vv)) this.send({ type: 'ack', ack: vv })
  }

  private checkSynced(): void {
    if (this.syncedDone || !this.peerHello || this.closed) return
    if (!this.opts.readOnly && !vvCovers(this.doc.version(), this.peerHello.have)) return
    if (!vvCovers(this.peerAcked, this.target)) return
    this.syncedDone = true
    this.resolveSynced()
    this.emit('synced')
  }
}

export { SyncError, SYNC_ERRORS }
