/**
 * `link(doc, channel)`: the replication state machine of one link (PROTOCOL.md).
 *
 * Owns, per link: the agent tables of both directions, what the peer is known to hold
 * (a cursor in the replica's update log, shared by all its links, plus a version vector
 * lower bound: the peer's HELLO or NEED, what it announced, the version when we last sent),
 * what the peer acknowledged, the outgoing batch throttle, the ack pipeline through
 * `persist`, and the gap timer that asks for missing events.
 *
 * Invariants: the peer holds the replica's state as of the cursor plus every entry that
 * came from the peer, so the entries after the cursor that it lacks, sent in log order,
 * never carry events whose parents the peer lacks (and a version-vector diff, after a
 * handshake or a NEED, is taken against a lower bound of what it holds); a message is
 * fully decoded and validated before anything is applied; acks are cumulative and sent
 * in order, each only after the persist of every batch it covers has resolved.
 * Cost per flush: O(entries since the cursor); a hub encodes a multi-entry batch once for
 * all links at the same cursor. Version vectors are scanned whole (O(agents)) only for a
 * handshake, a NEED, a lost cursor, and until the link is synced.
 */

import type { Channel, DirectChannel, LinkEndpoint } from './channels.ts'
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
  raiseVV,
  seedDictionaries,
  vvCovers,
  type Acks,
  type Message,
  type PresenceEntry,
} from './protocol.ts'
import type { PresencePort } from './presence.ts'
import type { MutableVV, Replica, VersionVector } from './replica.ts'
import { RelayTree, missingCount } from './relay-tree.ts'
import { NO_POSITION, UpdateLog, type LogEntry, type LogReader } from './update-log.ts'
import { summarizeUpdate } from './update-summary.ts'
import {
  realClock,
  type Clock,
  type Identity,
  type Link,
  type LinkEvents,
  type LinkOptions,
  type LinkStats,
} from './link-api.ts'

export { realClock, type Clock, type Identity, type Link, type LinkOptions, type LinkStats }

let nextLinkNo = 0

/** Updates at least this big count as a catch-up batch (prompt announcement, slower relay). */
const BIG_UPDATE_BYTES = 1024
/**
 * A big batch from another link is relayed after this many `relayDelayMs`: longer than the
 * stagger of big catch-ups (4 x relayDelayMs) plus a link latency, so a peer that got it by
 * another path (healing at the same time) announces it first.
 */
const BIG_RELAY_FACTOR = 6
/** A handshake owing the peer at least this many events is a big catch-up (staggered). */
const BIG_CATCHUP_EVENTS = 256
/** Cursor of a link that will diff version vectors at its next flush (pins no log entry). */
const NO_CURSOR = NO_POSITION
/** `lastFlush` of a link that never flushed (a small integer, like the times it holds). */
const LONG_AGO = -(2 ** 30)
/** Bits of a link's `flags`. */
const PEER_READ_ONLY = 1
const NEED_FULL = 2
const BASE_EXACT = 4
const ACKED_OWNED = 8
const AWAITING_HAVE = 16
const SYNCED = 32
const CLOSED = 64
/** Unacknowledged messages remembered per link (older ones are merged). */
const MAX_AWAITING = 256
/** The empty vv of a link that heard no announcement (shared, never written). */
const NO_VV: MutableVV = Object.freeze(emptyVV()) as MutableVV

/** A stable number in [0, 1) per (us, peer): deterministic, different across link pairs. */
function pairJitter(a: string, b: string): number {
  let h = 2166136261
  for (const ch of `${a}\u0000${b}`) h = Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0
  return h / 4294967296
}

function isEmpty(vv: VersionVector): boolean {
  for (const _ in vv) return false
  return true
}

/** Replicates `doc` over `channel` until either side closes it (API.md "Sync over any link"). */
export function link(doc: Replica, channel: Channel, opts: LinkOptions = {}): Link {
  return new LinkImpl(doc, channel, opts, opts.identity)
}

/**
 * `link` for a hub: `opts` may be shared by every link of a document (nothing of it is copied
 * per link), and `identity`, the peer's server-bound identity, is given apart from it, or as a
 * function making it when first needed (most peers never send presence).
 */
export function boundLink(
  doc: Replica,
  channel: Channel,
  opts: LinkOptions,
  identity: Identity | (() => Identity) | undefined,
): Link {
  return new LinkImpl(doc, channel, opts, identity)
}

function isDirect(channel: Channel): channel is DirectChannel {
  return typeof (channel as Partial<DirectChannel>).attachLink === 'function'
}

/** A flush queued with `clock.soon`: it cannot be cancelled, so it runs only while still due. */
interface SoonFlush {
  readonly soon: true
}

function isSoonFlush(t: unknown): t is SoonFlush {
  return (t as Partial<SoonFlush>).soon === true
}

/** An EVENTS message we sent that asked for an acknowledgement, and what it carried. */
interface Awaiting {
  readonly no: number
  readonly carried: readonly VersionVector[]
}

class LinkImpl implements Link, LogReader, PresencePort, LinkEndpoint {
  private readonly out: WireState
  private readonly inn: WireState
  private readonly log: UpdateLog
  /** Event handlers, made on first `on` (a hub holds many links nobody listens to). */
  private handlers: { [E in keyof LinkEvents]?: LinkEvents[E][] } | null = null
  /** The peer's id, from its HELLO (undefined before it). */
  peerId: string | undefined = undefined
  /** What the peer's HELLO said it holds; NO_VV before it and once synced. */
  private peerHave: VersionVector = NO_VV
  /** Log position: the peer holds our state as of here, plus entries that came from it. */
  cursor = NO_CURSOR
  /** A version the peer holds (never mutated: it may be shared with other links). */
  private base: VersionVector = NO_VV
  /** Events the peer announced beyond `base` (NO_VV until it announces any). */
  private extra: MutableVV = NO_VV
  /**
   * What the peer acknowledged: NO_VV while nothing, then the first vv acked (shared, not
   * copied: often `base` itself), copied on the first write that raises it further.
   */
  private peerAcked: VersionVector = NO_VV
  private target: VersionVector = NO_VV
  /** EVENTS messages sent / received on this link. */
  private sentNo = 0
  private recvNo = 0
  private awaiting: Awaiting[] | null = null
  /** Stream ack to send (received EVENTS integrated and persisted), if above `ackedSent`. */
  private ackOwed = 0
  private ackedSent = 0
  /** Acknowledged events to send as a vv (stored by other means; see watchDurable). */
  private ackVVOwed: MutableVV | null = null
  /** Announcements to send: events we hold that the peer may not know we hold. */
  private haveOwed: MutableVV | null = null
  /**
   * When the link last flushed, and when its flush timer fires (while `flushTimer` is set;
   * `LONG_AGO` for a flush queued with `clock.soon`, which nothing can precede), in whole ms of
   * its clock (`realClock` counts from the process's start): a field that only ever holds small
   * integers lives in the object, any other number in a box of its own, per link (a hub holds
   * thousands).
   */
  private lastFlush = LONG_AGO
  private window: number
  /** The clock's timer handle, or a `SoonFlush` (queued with `clock.soon`), or null. */
  private flushTimer: unknown = null
  /** `opts.beforeFlush` is running (a flush has begun). */
  private inBeforeFlush = false
  private flushAt = 0
  private gapTimer: unknown = null
  private durableTimer: unknown = null
  private collecting: Uint8Array[] | null = null
  /**
   * The peer's update being integrated while the replica holds events waiting for parents:
   * an entry of ours that is not exactly it may hold some of them, released by it.
   */
  private releasing: Uint8Array | null = null
  /** This link's writes (`persist`), one group after another; null before the first. */
  private writes: Promise<void> | null = null
  /** This link's acks of persisted messages, in order (each after its writes and `whenStored`). */
  private acks: Promise<void> | null = null
  /**
   * What this link's messages carried since they were last all integrated (per agent, the next
   * seq), kept while the doc holds events waiting for parents; null when there is nothing.
   */
  private unintegrated: MutableVV | null = null
  /** Updates to store once the write under way settles, all at once (`write`). */
  private queued: Uint8Array[] | null = null
  /** Relay pruning, when both HELLOs asked for it. */
  private relayTree: RelayTree | null = null
  /** What our HELLO said we hold, when deflate or tree relay needs it (until the peer's HELLO). */
  private helloSent: VersionVector | null = null
  /** Events of the batch being applied that the doc integrated (for duplicate counting). */
  private fresh = 0
  /** `synced`, made on first read; its settle functions while it is pending. */
  private syncedPromise: Promise<void> | null = null
  private settleSynced: ((err: Error | null) => void) | null = null
  private closeError: SyncError | null = null
  /** The link's yes/no state, one bit each (the constants above; accessors below): one field. */
  private flags = NEED_FULL
  // Traffic counters (`stats`), fields rather than an object of their own.
  private messagesSent = 0
  private bytesSent = 0
  private messagesReceived = 0
  private bytesReceived = 0
  private eventMessagesSent = 0
  private myId = ''

  constructor(
    doc: Replica,
    private readonly channel: Channel,
    private readonly opts: LinkOptions,
    /** The server-bound identity of the peer (LinkOptions.identity), or its maker. */
    private boundIdentity: Identity | (() => Identity) | undefined,
  ) {
    this.window = this.batchDelay
    this.out = new WireState(opts.maxAgents)
    this.inn = new WireState(opts.maxAgents)
    this.log = UpdateLog.of(doc)
    this.log.attach(this)
    if (isDirect(channel)) channel.attachLink(this)
    else {
      channel.onMessage((m) => this.receive(m))
      channel.onClose(() => this.shutdown())
    }
    const have = doc.version()
    if (this.wantsTree() || opts.deflate !== false) this.helloSent = have
    const id = (this.myId =
      opts.id ??
      opts.presence?.id ??
      (doc as { agent?: unknown }).agent?.toString() ??
      `link${nextLinkNo++}`)
    this.send({
      type: 'hello',
      readOnly: opts.readOnly === true,
      id,
      have,
      durable: opts.durableVersion?.() ?? have,
      noDeflate: opts.deflate === false,
      tree: this.wantsTree(),
    })
  }

  /** The replica (held by its update log: one field less per link). */
  private get doc(): Replica {
    return this.log.doc
  }

  // Settings, read from the options when used: the options object may be shared by many
  // links (a hub passes one per document), so nothing of it is copied per link.
  private get clock(): Clock {
    return this.opts.clock ?? realClock
  }
  private get batchDelay(): number {
    return this.opts.batchDelayMs ?? 20
  }
  private get relayDelay(): number {
    return this.opts.relayDelayMs ?? 3 * this.batchDelay
  }
  private get ackDelay(): number {
    return this.opts.ackDelayMs ?? 0
  }
  private get maxBatchDelay(): number {
    return Math.max(this.batchDelay, this.opts.maxBatchDelayMs ?? 500)
  }
  private get maxBytes(): number {
    return this.opts.maxMessageBytes ?? 16 << 20
  }
  private get maxPending(): number {
    return this.opts.maxPendingEvents ?? 100_000
  }
  private get gapTimeout(): number {
    return this.opts.gapTimeoutMs ?? 1000
  }

  /** The peer's server-bound identity (PresencePort); a maker given for it runs on first use. */
  get identity(): Identity | undefined {
    const bound = this.boundIdentity
    if (typeof bound !== 'function') return bound
    return (this.boundIdentity = bound())
  }

  // The yes/no state, kept as bits of `flags`.
  private flag(bit: number): boolean {
    return (this.flags & bit) !== 0
  }
  private setFlag(bit: number, on: boolean): void {
    this.flags = on ? this.flags | bit : this.flags & ~bit
  }
  /** The peer's HELLO said it is read-only. */
  private get peerReadOnly(): boolean {
    return this.flag(PEER_READ_ONLY)
  }
  private set peerReadOnly(on: boolean) {
    this.setFlag(PEER_READ_ONLY, on)
  }
  /** The next flush diffs version vectors (after HELLO, NEED, or a lost log position). */
  private get needFull(): boolean {
    return this.flag(NEED_FULL)
  }
  private set needFull(on: boolean) {
    this.setFlag(NEED_FULL, on)
  }
  /** `base` is exactly our version at `cursor` (a batch may then be encoded against it). */
  private get baseExact(): boolean {
    return this.flag(BASE_EXACT)
  }
  private set baseExact(on: boolean) {
    this.setFlag(BASE_EXACT, on)
  }
  /** `peerAcked` is this link's own copy (else shared: copy before raising it). */
  private get ackedOwned(): boolean {
    return this.flag(ACKED_OWNED)
  }
  private set ackedOwned(on: boolean) {
    this.setFlag(ACKED_OWNED, on)
  }
  /** We grafted: our diff waits for the peer's version (its answer to the GRAFT). */
  private get awaitingHave(): boolean {
    return this.flag(AWAITING_HAVE)
  }
  private set awaitingHave(on: boolean) {
    this.setFlag(AWAITING_HAVE, on)
  }
  private get syncedDone(): boolean {
    return this.flag(SYNCED)
  }
  private set syncedDone(on: boolean) {
    this.setFlag(SYNCED, on)
  }
  get closed(): boolean {
    return this.flag(CLOSED)
  }
  private set closed(on: boolean) {
    this.setFlag(CLOSED, on)
  }

  /**
   * Whether we ask for tree relay: not on a read-only link (nothing flows one way), nor with
   * `persist` (on a tree link an announcement counts as an acknowledgement).
   */
  private wantsTree(): boolean {
    return this.opts.treeRelay !== false && !this.opts.readOnly && !this.opts.persist
  }

  get stats(): LinkStats {
    return {
      messagesSent: this.messagesSent,
      bytesSent: this.bytesSent,
      messagesReceived: this.messagesReceived,
      bytesReceived: this.bytesReceived,
      eventMessagesSent: this.eventMessagesSent,
    }
  }

  get synced(): Promise<void> {
    if (this.syncedPromise === null) {
      if (this.syncedDone) this.syncedPromise = Promise.resolve()
      else if (this.closed) this.syncedPromise = Promise.reject(this.closedBeforeSync())
      else {
        this.syncedPromise = new Promise<void>((resolve, reject) => {
          this.settleSynced = (err) => (err === null ? resolve() : reject(err))
        })
      }
      // A link closing before sync is reported via 'error'/'close' too.
      this.syncedPromise.catch(() => {})
    }
    return this.syncedPromise
  }

  private closedBeforeSync(): SyncError {
    return this.closeError ?? new SyncError('GOING_AWAY', 'link closed before sync')
  }

  get open(): boolean {
    return this.peerId !== undefined && !this.closed
  }
  peerVersion(): VersionVector {
    return maxVV(this.base, this.extra)
  }
  ackedVersion(): VersionVector {
    return copyVV(this.peerAcked)
  }

  on<E extends keyof LinkEvents>(event: E, handler: LinkEvents[E]): () => void {
    const handlers = (this.handlers ??= {})
    const list = (handlers[event] ??= []) as LinkEvents[E][]
    list.push(handler)
    return () => {
      const i = list.indexOf(handler)
      if (i >= 0) list.splice(i, 1)
    }
  }

  private emit<E extends keyof LinkEvents>(event: E, ...args: Parameters<LinkEvents[E]>): void {
    const list = this.handlers?.[event]
    if (list === undefined) return
    for (const h of [...list]) (h as (...a: unknown[]) => void)(...args)
  }

  close(): void {
    if (this.closed) return
    this.channel.close(1000, 'link closed')
    this.shutdown()
  }

  keepAlive(): void {
    if (!this.closed && this.peerId !== undefined) this.send({ type: 'ack' })
  }

  /** The channel closed (LinkEndpoint). */
  channelClosed(): void {
    this.shutdown()
  }

  private shutdown(): void {
    if (this.closed) return
    this.closed = true
    this.log.detach(this)
    this.relayTree?.close()
    this.cancelFlush()
    if (this.gapTimer !== null) this.clock.clearTimeout(this.gapTimer)
    if (this.durableTimer !== null) this.clock.clearTimeout(this.durableTimer)
    this.flushTimer = this.gapTimer = null
    this.opts.presence?.detach(this)
    if (!this.syncedDone) this.settleSynced?.(this.closedBeforeSync())
    this.settleSynced = null
    this.emit('close')
  }

  private send(msg: Message): void {
    if (this.closed) return
    this.sendBytes(encodeMessage(msg, this.out), msg.type === 'events')
  }

  private sendBytes(bytes: Uint8Array, events: boolean): void {
    if (this.closed) return
    this.messagesSent++
    this.bytesSent += bytes.length
    if (events) this.eventMessagesSent++
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

  // ------------------------------------------------------------ the replica's updates

  /** A new update of the replica (UpdateLog): note it, schedule what it calls for. */
  onEntry(entry: LogEntry): void {
    if (this.closed) return
    const origin = entry.origin
    if (origin === this) {
      const u = this.releasing
      if (u !== null && !entry.is(u) && !this.peerHolds(u, entry)) {
        // Events released by the peer's update, which it may lack: they go back to it.
        entry.beyondOrigin = true
        this.scheduleFlush(this.relayDelay)
      }
      this.collecting?.push(entry.bytes)
      this.opts.onIntegrated?.(entry.bytes)
      if (this.relayTree !== null) this.fresh += entry.summary?.events ?? 0
    } else if (this.relayTree?.lazy) {
      // Out of the tree: announce, at most every lazyDelayMs (a big batch at once).
      if (entry.bytes.length >= BIG_UPDATE_BYTES) this.promptAnnounce(entry)
      this.scheduleFlush(this.relayTree.lazyDelayMs)
    } else if (!(origin instanceof LinkImpl)) {
      // Local edits go out at once (throttled).
      this.scheduleFlush(0)
    } else {
      // Events relayed from another link wait `relayDelayMs`, so the peer's own
      // announcements can spare a duplicate. A big batch (a heal, a catch-up) is
      // announced at once, and relayed only after a longer wait: peers that got it by
      // another path say so in time.
      const big = entry.bytes.length >= BIG_UPDATE_BYTES
      if (big) this.promptAnnounce(entry)
      this.scheduleFlush(big ? BIG_RELAY_FACTOR * this.relayDelay : this.relayDelay)
    }
    this.checkSynced()
  }

  // ------------------------------------------------------------ incoming

  /** A message from the channel (LinkEndpoint). */
  receive(bytes: Uint8Array): void {
    if (this.closed) return
    this.messagesReceived++
    this.bytesReceived += bytes.length
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
      if (this.peerId !== undefined) throw new SyncError('STATE', 'second HELLO on one link')
      this.peerId = msg.id
      this.peerReadOnly = msg.readOnly
      this.peerHave = msg.have
      // Both directions deflate when both sides want it (each side's HELLO says so).
      this.out.deflate = this.inn.deflate = this.opts.deflate !== false && msg.noDeflate !== true
      if (this.out.deflate) seedDictionaries(this.out, this.inn, this.helloSent!, msg.have)
      if (msg.tree && this.wantsTree()) {
        const host = { version: () => this.doc.version(), graft: () => this.graft() }
        const lazyMs = this.opts.lazyDelayMs ?? 6 * this.maxBatchDelay
        // Graft checks spread per link pair, so one graft can spare the others.
        const graftMs = (this.opts.graftDelayMs ?? 2000) * (1 + pairJitter(this.myId, msg.id))
        this.relayTree = new RelayTree(this.doc, msg.id, host, this.clock, lazyMs, graftMs)
      }
      this.base = msg.have
      // A fresh object from the decoder: ours now.
      if (!isEmpty(msg.durable)) this.raiseAcked(msg.durable)
      // Events we hold that the peer lacks must be acked before `synced`; a read-only
      // peer will never take ours, so then only its state has to be merged.
      this.target = msg.readOnly ? emptyVV() : this.doc.version()
      this.opts.presence?.attach(this)
      const told = this.helloSent
      this.helloSent = null // kept until the peer's HELLO
      // The peer's HELLO is its first announcement (the link may start out of the tree).
      this.relayTree?.heard(msg.have, true)
      if (told !== null && this.relayTree?.startsLazy(told, msg.have, () => this.otherEager())) {
        // A reconnect of a link that was out of the tree, the ends differing by little (in
        // flight in the tree, most likely): no diffs.
        this.relayTree.leave(told)
        this.needFull = false
        this.cursor = NO_CURSOR
      } else if (missingCount(this.target, msg.have) >= BIG_CATCHUP_EVENTS && !msg.readOnly) {
        // A big catch-up (a healing partition reaches several links at once) is staggered
        // per link pair, so the first batches' prompt announcements can spare the later ones.
        this.scheduleFlush(4 * this.relayDelay * pairJitter(this.myId, msg.id))
      } else this.flush()
      this.watchDurable()
      this.checkSynced()
      return
    }
    if (this.peerId === undefined) throw new SyncError('STATE', `${msg.type} before HELLO`)
    switch (msg.type) {
      case 'events':
        this.onAcks(msg)
        this.onEvents(msg.updates, msg.ackWanted === true, msg.diff === true)
        break
      case 'ack':
        this.onAcks(msg)
        break
      case 'prune':
      case 'graft':
        if (this.relayTree === null)
          throw new SyncError('STATE', `${msg.type} on a link without tree`)
        if (msg.type === 'prune') {
          // Prunes race: the peer may cut what is our last eager link. Then we refuse
          // (a GRAFT: the peer rejoins; we stayed in the tree, our cursor holds).
          if (this.relayTree.lazy || this.otherEager()) this.leaveTree()
          else this.send({ type: 'graft', have: this.doc.version() })
        } else {
          // Back in the tree: from our log position if we still hold it (a refused PRUNE),
          // else the diff, as for a NEED; and our version, for the grafter's diff.
          this.relayTree.rejoin()
          if (this.cursor === NO_CURSOR || this.needFull) this.diffFrom(msg.have)
          else raiseVV(this.writableExtra(), msg.have)
          this.haveOwed = copyVV(this.doc.version())
          this.scheduleFlush()
        }
        break
      case 'need':
        this.diffFrom(msg.have)
        break
      case 'presence':
        this.opts.presence?.receive(this, msg.entries)
        break
    }
    this.checkSynced()
  }

  /** The peer holds `have` (NEED, GRAFT): the next flush sends the diff. */
  private diffFrom(have: VersionVector): void {
    // A flood of NEEDs costs at most one diff per batch window (the flush throttle).
    this.base = have
    this.baseExact = false
    this.extra = NO_VV
    this.needFull = true
    this.cursor = NO_CURSOR
    this.scheduleFlush()
  }

  /**
   * Remembers what message `no` carried until the peer acks it. Bounded: a peer that never
   * acks would otherwise grow this forever; the oldest records are merged (acks are
   * cumulative, so acking the later one acks both).
   */
  private await(no: number, carried: VersionVector[]): void {
    const awaiting = (this.awaiting ??= [])
    awaiting.push({ no, carried })
    if (awaiting.length > MAX_AWAITING) {
      const [a, b] = awaiting.splice(0, 2) as [Awaiting, Awaiting]
      let vv = emptyVV()
      for (const c of [...a.carried, ...b.carried]) vv = maxVV(vv, c)
      awaiting.unshift({ no: b.no, carried: [vv] })
    }
  }

  /** Raises `peerAcked` to cover `vv` (which it may keep: never write to it); true if it grew. */
  private raiseAcked(vv: VersionVector): boolean {
    if (vvCovers(this.peerAcked, vv)) return false
    if (this.peerAcked === NO_VV) {
      this.peerAcked = vv
      return true
    }
    if (!this.ackedOwned) {
      this.peerAcked = copyVV(this.peerAcked)
      this.ackedOwned = true
    }
    raiseVV(this.peerAcked as MutableVV, vv)
    return true
  }

  private writableExtra(): MutableVV {
    if (this.extra === NO_VV) this.extra = emptyVV()
    return this.extra
  }

  /** Sends presence entries (PresencePort: the link's presence calls it). */
  sendPresence(entries: readonly PresenceEntry[]): void {
    this.send({ type: 'presence', entries })
  }

  private onAcks(msg: Acks): void {
    let changed = false
    if (msg.have) raiseVV(this.writableExtra(), msg.have)
    if (this.awaitingHave) {
      // The answer to our GRAFT (or a message before it: then the diff is against a lower
      // bound still). Its `have` may be empty: increments over what we heard already.
      this.awaitingHave = false
      this.needFull = true
      this.scheduleFlush()
    }
    if (msg.have) {
      if (this.relayTree !== null) {
        // No persist on a tree link: what the peer holds, it has integrated.
        if (this.raiseAcked(msg.have)) changed = true
        this.relayTree.heard(msg.have)
      }
    }
    if (msg.ack) {
      raiseVV(this.writableExtra(), msg.ack)
      if (this.raiseAcked(msg.ack)) changed = true
    }
    const n = msg.ackedMessages
    if (n !== undefined) {
      if (n > this.sentNo) throw new SyncError('STATE', `ack of message ${n}, ${this.sentNo} sent`)
      const awaiting = this.awaiting
      while (awaiting !== null && awaiting.length > 0 && awaiting[0]!.no <= n) {
        for (const vv of awaiting.shift()!.carried) {
          if (this.raiseAcked(vv)) changed = true
        }
      }
      // Most links await one message at a time: no empty array kept between them.
      if (awaiting?.length === 0) this.awaiting = null
    }
    if (changed && this.handlers?.ack?.length) this.emit('ack', copyVV(this.peerAcked))
  }

  private onEvents(updates: readonly Uint8Array[], ackWanted: boolean, diff: boolean): void {
    const no = ++this.recvNo
    if (this.opts.readOnly) {
      const mine = updates.length > 0 ? this.doc.version() : null
      for (const u of updates) {
        const s = summarizeUpdate(u)
        if (s === null || !vvCovers(mine!, s.vv)) {
          return this.fail(new SyncError('READ_ONLY', 'this link is read-only: edits refused'))
        }
      }
      return
    }
    // What the batch added, for `persist` (read only then: an update read is an update encoded).
    const persist = this.opts.persist
    const batch: Uint8Array[] | null = (this.collecting = persist ? [] : null)
    const pendingBefore = this.doc.pendingCount
    this.fresh = 0
    let bad: unknown = null
    try {
      // Each update integrates whole or not at all; a bad one ends the link (the ones
      // before it were valid and stay).
      for (const u of updates) {
        this.releasing = this.doc.pendingCount > 0 ? u : null
        this.doc.applyUpdate(u, this)
      }
    } catch (e) {
      bad = e
    } finally {
      this.collecting = this.releasing = null
    }
    // What the doc integrated is stored whatever follows (a bad update, an overflow, the link
    // closing): other links may hold it already, and an ack elsewhere may wait for it.
    if (batch !== null && batch.length > 0) this.write(batch)
    if (bad !== null) throw new SyncError('BAD_UPDATE', (bad as Error)?.message ?? String(bad))
    const pending = this.doc.pendingCount
    const fresh = this.fresh + (pending - pendingBefore)
    if (this.relayTree?.pushed(updates, diff, fresh, () => this.otherEager())) {
      this.send({ type: 'prune' })
      if (!this.relayTree.lazy) this.leaveTree()
    }
    // The buffer is the doc's, shared by its links: the link whose message grew it past the
    // bound is the one closed.
    if (pending > this.maxPending && pending > pendingBefore) {
      throw new SyncError(
        'PENDING_OVERFLOW',
        `${pending} events wait for parents (max ${this.maxPending})`,
      )
    }
    // An ack says every event of the acked messages is integrated: not while some of them wait.
    // Meanwhile this link asks its peer, which integrated their parents, for what is missing.
    // A link whose messages integrated whole asks nothing: another link's orphan (a hub's
    // client that sent one and left) does not make every link of the hub ask its peer.
    if (pending > 0 && !this.integratedAll(updates)) {
      this.armGapTimer()
      return
    }
    this.unintegrated = null
    if (!ackWanted) return
    if (!persist) return this.queueAck(no)
    // An ack claims more than this message's new events: its events the doc held already (maybe
    // another link's, being stored), earlier messages not acked (acks are cumulative), and, by
    // the version it raises at the peer, every earlier event of each agent it carries. So it
    // waits for this link's writes so far and for everything the doc holds now to be stored.
    const written = this.writes
    const stored = this.opts.whenStored?.() ?? null
    const acks = (this.acks ?? Promise.resolve()).then(async () => {
      await written
      await stored
      this.queueAck(no)
    })
    acks.catch(() => {})
    this.acks = acks
  }

  /**
   * Whether the peer holds every event of `entry`, integrated from its `update` but not
   * as received: part of it known already (the peer holds that: it sent it), or events that
   * waited for parents and `update` released (of another agent, or later ones of the same: the
   * peer may lack them). Each agent's events form a chain, so the peer holds every event of
   * an agent up to the last one its update carried.
   */
  private peerHolds(update: Uint8Array, entry: LogEntry): boolean {
    const sent = summarizeUpdate(update)
    const got = entry.summary
    return sent !== null && got !== null && vvCovers(sent.vv, got.vv)
  }

  /**
   * Whether every event of this link's messages is integrated, while the doc's pending buffer
   * is not empty: it may hold only other links' events, waiting for parents that may never
   * come (a peer that sent an event without its parent and left), and those must not hold up
   * this link's acks. The messages' versions are read from their updates (only then).
   */
  private integratedAll(updates: readonly Uint8Array[]): boolean {
    const carried = (this.unintegrated ??= emptyVV())
    for (const u of updates) {
      const s = summarizeUpdate(u)
      if (s !== null) raiseVV(carried, s.vv)
    }
    return vvCovers(this.doc.version(), carried)
  }

  /**
   * Stores `batch` (`opts.persist`) after this link's earlier writes, even if the link closes
   * meanwhile: what arrives while a write is under way is stored, all at once (calls in order,
   * not waiting for each other), when it settles, so a peer sending faster than one write per
   * commit builds no backlog. A failure fails the link, and its later batches are left to the
   * owner (PROTOCOL.md).
   */
  private write(batch: readonly Uint8Array[]): void {
    if (this.queued !== null) {
      for (const u of batch) this.queued.push(u)
      return
    }
    this.queued = batch.slice()
    const persist = this.opts.persist!
    const w = (this.writes ?? Promise.resolve()).then(async () => {
      const group = this.queued!
      this.queued = null
      try {
        await Promise.all(group.map((u) => persist(u)))
      } catch (e) {
        this.fail(new SyncError('PERSIST_FAILED', (e as Error)?.message ?? String(e)))
        throw e
      }
    })
    w.catch(() => {})
    this.writes = w
  }

  private queueAck(no: number): void {
    if (this.closed || no <= this.ackOwed) return
    this.ackOwed = no
    // A durable ack is awaited (the peer's `synced`); a plain one can wait to ride along.
    this.scheduleFlush(this.opts.persist ? 0 : this.ackDelay)
  }

  /**
   * The peer may hold events we have in memory but not yet stored (a persist still
   * running for another link): it will not resend them, so ack them once stored: once
   * `whenStored` settles, or else once `durableVersion` covers them, polling until it does.
   */
  private watchDurable(): void {
    if (!this.opts.persist || this.peerId === undefined) return
    const { whenStored, durableVersion } = this.opts
    if (!whenStored && !durableVersion) return
    // What both hold (what the peer holds beyond it, it sends, and those messages are acked).
    const theirs = this.peerHave
    const mine = this.doc.version()
    const ack = emptyVV()
    for (const a in theirs) {
      const need = Math.min(theirs[a]!, mine[a] ?? 0)
      if (need > 0) ack[a] = need
    }
    if (isEmpty(ack)) return
    const owe = () => {
      if (this.closed) return
      this.ackVVOwed = this.ackVVOwed ? maxVV(this.ackVVOwed, ack) : ack
      this.scheduleFlush()
    }
    if (whenStored) {
      const stored = whenStored()
      if (stored === null) owe()
      else stored.then(owe, () => {})
      return
    }
    const tick = () => {
      this.durableTimer = null
      if (this.closed) return
      if (vvCovers(durableVersion!(), ack)) owe()
      else this.durableTimer = this.clock.setTimeout(tick, this.gapTimeout / 4)
    }
    tick()
  }

  private armGapTimer(): void {
    if (this.gapTimer !== null) return
    this.gapTimer = this.clock.setTimeout(() => {
      this.gapTimer = null
      const waiting = this.unintegrated
      if (this.closed || waiting === null || vvCovers(this.doc.version(), waiting)) return
      this.send({ type: 'need', have: this.doc.version() })
      this.armGapTimer()
    }, this.gapTimeout)
  }

  // ------------------------------------------------------------ outgoing

  /** Flushes no earlier than `minWaitMs` from now, nor within the batch window of the last flush. */
  private scheduleFlush(minWaitMs = 0): void {
    if (this.closed || this.peerId === undefined || this.inBeforeFlush) return
    const w = this.window
    const aligned = w > 0 && this.opts.alignBatches === true
    // A flush already due no later than the window allows: nothing to do, and no clock read
    // (a hub's links each hear of every event a document integrates).
    const earliest = aligned ? (Math.floor(this.lastFlush / w) + 1) * w : this.lastFlush + w
    if (this.flushTimer !== null && this.flushAt <= earliest) return
    const now = this.clock.now()
    const at = aligned
      ? Math.max(Math.ceil((now + minWaitMs) / w) * w, earliest)
      : Math.max(now + minWaitMs, earliest)
    if (this.flushTimer !== null) {
      if (this.flushAt <= at) return
      this.cancelFlush()
    }
    if (at <= now && this.clock.soon !== undefined) {
      // Due now: at the end of this task (edits made together still go out together), not
      // after a timer, which a busy event loop runs only after all the I/O it has queued (a
      // saturated load client held its edits back by half its latency) and a browser clamps.
      // Nothing can be due sooner: later calls in this task return above.
      const soon: SoonFlush = { soon: true }
      this.flushAt = LONG_AGO
      this.flushTimer = soon
      this.clock.soon(() => {
        if (this.flushTimer !== soon) return // cancelled, or replaced
        this.flushTimer = null
        this.flush()
      })
      return
    }
    this.flushAt = Math.ceil(at)
    this.flushTimer = this.clock.setTimeout(() => {
      this.flushTimer = null
      this.flush()
    }, at - now)
  }

  private cancelFlush(): void {
    const t = this.flushTimer
    if (t !== null && !isSoonFlush(t)) this.clock.clearTimeout(t)
    this.flushTimer = null
  }

  /** Sends what the peer lacks (one batch) and any ack or announcement due. */
  private flush(): void {
    if (this.closed || this.peerId === undefined) return
    if (this.opts.beforeFlush !== undefined) {
      // What it adds is read below: no flush of its own.
      this.inBeforeFlush = true
      try {
        this.opts.beforeFlush(this.window)
      } finally {
        this.inBeforeFlush = false
      }
      if (this.closed) return
    }
    const now = this.clock.now()
    const recent = now - this.lastFlush <= this.maxBatchDelay
    this.lastFlush = Math.floor(now)
    let batched = 0
    let updates: Uint8Array[] = []
    let carried: VersionVector[] = []
    let ackWanted = !this.syncedDone
    let diff = false
    const lazy = this.relayTree?.lazy === true
    if (this.peerReadOnly) {
      // The peer refuses our events: nothing to send, nothing to keep for it.
      this.cursor = NO_CURSOR
    } else {
      let entries = this.needFull ? null : lazy ? [] : this.log.since(this.cursor)
      if (entries === null) {
        // Handshake, NEED, or our log position was dropped: diff version vectors.
        const vv = this.doc.version()
        const since = maxVV(this.base, this.extra)
        if (!vvCovers(since, vv)) {
          updates = [this.doc.encodeUpdate(since)]
          carried = [vv]
          ackWanted = diff = true
        }
        this.cursor = this.log.end
        this.base = vv
        this.baseExact = true
        // What the peer said it holds beyond our version stays known (it may reach us later).
        this.extra = NO_VV
        for (const a in since) if (since[a]! > (vv[a] ?? 0)) this.writableExtra()[a] = since[a]!
        this.needFull = false
        entries = []
      }
      if (lazy) {
        // Out of the tree: nothing is pushed (no log position to keep); announce instead.
        this.cursor = NO_CURSOR
        this.baseExact = false
        const have = this.relayTree!.announcement()
        if (have !== null) raiseVV((this.haveOwed ??= emptyVV()), have)
      } else if (entries.length > 0) {
        const picked = this.pick(entries)
        updates = picked.updates
        carried = picked.carried
        ackWanted ||= picked.local && this.opts.ackOwnEvents !== false
        // Events the peer sent ride back with those they released: no reason to prune.
        diff ||= picked.echoes
        batched = picked.entries
      }
    }
    // Widen the window while traffic is sustained (or, for 'backlog', while several entries
    // go out together); else back to the minimum.
    const grow = this.opts.batchGrowth === 'backlog' ? batched >= 2 : recent
    this.window = grow
      ? Math.min(this.maxBatchDelay, Math.max(1, this.window * 2))
      : this.batchDelay
    this.log.moved()
    const acks = this.takeAcks()
    if (updates.length > 0) {
      const no = ++this.sentNo
      if (ackWanted) this.await(no, carried)
      if (!ackWanted && !diff && acks === null && updates.length === 1 && !this.out.deflate) {
        // The same bytes for every link sending this update now: encoded once.
        this.sendBytes(this.log.plainMessage(updates[0]!), true)
      } else this.send({ type: 'events', updates, ackWanted, diff, ...acks })
    } else if (acks !== null) {
      this.send({ type: 'ack', ...acks })
    }
  }

  /**
   * The log entries after our cursor that the peer lacks, as updates to send: none if it
   * has them all; one entry as is; several local edits as one update of just them; else,
   * when `base` is our version at the cursor, one update encoded against it (shared by every
   * link at that cursor; events the peer sent ride along, which it drops as known) unless
   * those would dominate, or one update against `base` plus what the peer holds; else the
   * entries as they are.
   */
  private pick(entries: readonly LogEntry[]): {
    updates: Uint8Array[]
    carried: VersionVector[]
    local: boolean
    entries: number
    /** An entry goes back to the peer it came from, with events the peer sent (a diff). */
    echoes: boolean
  } {
    const send: LogEntry[] = []
    /** Entries the peer holds (it sent them, or announced them). */
    const held: LogEntry[] = []
    let skipped = false
    let local = false
    let echoes = false
    const announced = !isEmpty(this.extra)
    for (const e of entries) {
      if (e.origin === this && !e.beyondOrigin) {
        held.push(e)
        continue
      }
      const sum = announced ? e.summary : null
      if (sum !== null && vvCovers(this.extra, sum.vv)) {
        // The peer has it from elsewhere; tell it we have it too.
        this.haveOwed ??= emptyVV()
        raiseVV(this.haveOwed, sum.vv)
        held.push(e)
        skipped = true
        continue
      }
      send.push(e)
      if (e.origin === this) echoes = true
      else if (!(e.origin instanceof LinkImpl)) local = true
    }
    this.cursor = this.log.end
    if (send.length === 0) {
      this.baseExact = false
      return { updates: [], carried: [], local, entries: 0, echoes }
    }
    let updates: Uint8Array[]
    const own = send.length > 1 && local ? this.encodeLocal(send) : null
    if (send.length === 1) updates = [send[0]!.bytes]
    else if (own !== null) updates = [own]
    else if (
      this.baseExact &&
      (held.length === 0 ||
        (!this.out.deflate && this.relayTree === null && !skipped && held.length <= send.length))
    ) {
      // Shared by every link at this cursor. On a hub's links (no deflate: the same bytes
      // for every peer) the peer's own events may ride along; a deflating peer link, where
      // bytes count, never echoes them (next case).
      updates = [this.log.encodeSince(this.base)]
    } else if (this.baseExact) {
      // One update of just what the peer lacks: our version at the cursor plus what it holds.
      const since = copyVV(this.base)
      let known = true
      for (const e of held) {
        const sum = e.summary
        if (sum === null) known = false
        else raiseVV(since, sum.vv)
      }
      updates = known ? [this.doc.encodeUpdate(since)] : send.map((e) => e.bytes)
    } else updates = send.map((e) => e.bytes)
    // What the peer holds once it has these: our version now (a hub's replica memoises
    // it, so links flushing together share one object and one encoding next time).
    const vv = this.doc.version()
    const carried: VersionVector[] = []
    if (local || !this.syncedDone) {
      for (const e of send) carried.push(e.summary?.vv ?? vv)
    }
    this.base = vv
    this.baseExact = true
    if (this.extra !== NO_VV && vvCovers(vv, this.extra)) this.extra = NO_VV
    return { updates, carried, local, entries: send.length, echoes }
  }

  /**
   * Several local edits (one agent's contiguous events) as one update, when nothing else is
   * to be sent: everything else we hold the peer holds (before the cursor, or from the peer),
   * so the update is `encodeUpdate(our version, with our agent's entry at the first of
   * these edits)`. Null when that does not apply.
   */
  private encodeLocal(send: readonly LogEntry[]): Uint8Array | null {
    let agent: string | null = null
    let start = Infinity
    for (const e of send) {
      const sum = e.origin instanceof LinkImpl ? null : e.summary
      if (sum === null) return null
      for (const a in sum.vv) {
        if (agent !== null && a !== agent) return null
        agent = a
      }
      if (agent !== null) start = Math.min(start, sum.vv[agent]! - sum.events)
    }
    if (agent === null || !(start >= 0)) return null
    const since = copyVV(this.doc.version())
    since[agent] = start
    return this.doc.encodeUpdate(since)
  }

  /** The acks and announcements due now, or null. */
  private takeAcks(): Acks | null {
    let acks: { -readonly [K in keyof Acks]: Acks[K] } | null = null
    if (this.ackOwed > this.ackedSent) {
      acks = { ackedMessages: this.ackOwed }
      this.ackedSent = this.ackOwed
    }
    if (this.ackVVOwed !== null) {
      ;(acks ??= {}).ack = this.ackVVOwed
      this.ackVVOwed = null
    }
    if (this.haveOwed !== null) {
      ;(acks ??= {}).have = this.haveOwed
      this.haveOwed = null
    }
    return acks
  }

  get tree(): 'off' | 'eager' | 'lazy' {
    return this.relayTree === null ? 'off' : this.relayTree.lazy ? 'lazy' : 'eager'
  }

  /** True while this link is open and pushes events to us (in the relay tree, if any). */
  get eager(): boolean {
    return this.open && this.relayTree?.lazy !== true
  }

  /** Another open link of our replica pushes events to us. */
  private otherEager(): boolean {
    return this.log.readerList.some((r) => r !== this && r instanceof LinkImpl && r.eager)
  }

  /** The link leaves the relay tree: no log position; announcements go every lazyDelayMs. */
  private leaveTree(): void {
    // The log position is kept until the first announcement (a refusal may come first).
    this.relayTree!.leave()
    this.scheduleFlush(this.relayTree!.lazyDelayMs)
  }

  /** Announced events did not arrive: the link rejoins the tree and both ends send diffs. */
  private graft(): void {
    if (this.closed) return
    this.send({ type: 'graft', have: this.doc.version() })
    this.relayTree!.rejoin()
    // Our diff waits for the peer's version, which its answer carries.
    this.needFull = false
    this.awaitingHave = true
    this.cursor = NO_CURSOR
    this.baseExact = false
  }

  /** Announces a big batch from another link right away (no persist only). */
  private promptAnnounce(entry: LogEntry): void {
    if (this.closed || this.peerId === undefined || this.opts.persist) return
    // Even if the peer has these events too: it is about to relay them to us unless told.
    const sum = entry.summary
    if (sum !== null) this.send({ type: 'ack', have: sum.vv })
  }

  private checkSynced(): void {
    if (this.syncedDone || this.peerId === undefined || this.closed) return
    if (!this.opts.readOnly && !vvCovers(this.doc.version(), this.peerHave)) return
    if (!vvCovers(this.peerAcked, this.target)) return
    this.syncedDone = true
    this.peerHave = NO_VV
    this.target = NO_VV
    this.settleSynced?.(null)
    this.settleSynced = null
    this.emit('synced')
  }
}

export { SyncError, SYNC_ERRORS }
