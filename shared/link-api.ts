/**
 * The public surface of `link` (sync.ts): its options, the `Link` interface and its
 * statistics and events, and the injectable clock. Types only (and the real clock); the
 * state machine behind them is sync.ts, the semantics are PROTOCOL.md's.
 */
import type { Presence } from './presence.ts'
import type { SyncError } from './protocol.ts'
import type { VersionVector } from './replica.ts'

/** Timers and time, injectable so a simulator can run links on virtual time. */
export interface Clock {
  /** Milliseconds on a clock that only moves forward; only differences between readings count. */
  now(): number
  setTimeout(fn: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
  /**
   * Runs `fn` once the current task ends, before any timer or I/O callback (a microtask on the
   * real clock). Optional: without it, what is due now waits for `setTimeout(fn, 0)`.
   */
  soon?(fn: () => void): void
}

/**
 * The default clock: `performance.now()`, monotonic, counted from the process's (or page's)
 * start, so the times links and presence keep stay small (whole ms below 2^31 live in their
 * object; `Date.now()` is past 2^31, a number box of its own per field) and a wall-clock
 * change cannot stretch or shrink an interval.
 */
export const realClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
  soon: (fn) => queueMicrotask(fn),
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
  /**
   * Stores each batch of new events from this peer, in order; the ack waits for it. What the
   * link integrated is handed to it even if the link then closes (a bad update after it in the
   * message, the peer leaving), without an ack; after one rejects, the link's later batches are
   * left to the owner (PROTOCOL.md).
   */
  persist?: (update: Uint8Array) => Promise<void>
  /** What this side holds durably (the peer's ack baseline in HELLO). Default `doc.version()`. */
  durableVersion?: () => VersionVector
  /**
   * Settles once every event the doc holds now is stored (null when they all are). With
   * `persist`, every ack waits for the one taken when its message arrived (an ack claims events
   * the doc may have held already, maybe another link's still being stored, and at the peer
   * every earlier event of each agent it names), and the events the peer holds at HELLO are
   * acknowledged once the one taken then settles. Without it, the latter wait for
   * `durableVersion` to cover them. An owner whose doc takes events from several links (a hub)
   * must pass it: without it an ack can claim events another link is still storing.
   */
  whenStored?: () => Promise<void> | null
  /**
   * Deflate outgoing update lists against a per-direction dictionary when that saves bytes
   * (agent ids and headers repeat). Default true. False also asks the peer (in HELLO) not to
   * deflate what it sends us: a hub sends the same bytes to every link and keeps no
   * dictionary per connection.
   */
  deflate?: boolean
  /** Largest incoming message. Default 16 MiB. */
  maxMessageBytes?: number
  /** Largest `doc.pendingCount` tolerated after applying a batch. Default 100,000. */
  maxPendingEvents?: number
  /** Distinct agent ids per link direction. Default 100,000. */
  maxAgents?: number
  /** Bounded delay of the outgoing batch throttle. Default 20 ms. */
  batchDelayMs?: number
  /** The longest the batch window grows to (the longest an event waits). Default 500 ms. */
  maxBatchDelayMs?: number
  /**
   * When the batch window grows (doubling per flush, from at least 1 ms, up to
   * `maxBatchDelayMs`): `'traffic'` (default) while flushes follow each other within
   * `maxBatchDelayMs`, back to `batchDelayMs` after a quiet stretch that long (fewest
   * messages and bytes: peers in a mesh); `'backlog'` only while flushes carry several updates
   * at once (they arrive faster than the link flushes), back to `batchDelayMs` after a flush of
   * one update or none (a lone edit is never held back: a hub's links).
   */
  batchGrowth?: 'traffic' | 'backlog'
  /**
   * Flush only at multiples of the batch window on the clock (at most once per multiple),
   * instead of a window after the link's last flush: links of one replica with the same
   * window then flush at the same moments, at the same place in its log, and share one
   * encoding of each batch (a hub's links). An edit waits at most one window, even after a
   * quiet stretch. Default false.
   */
  alignBatches?: boolean
  /** Extra delay before relaying events that came from another link. Default 3 x batchDelayMs. */
  relayDelayMs?: number
  /**
   * Relay along a tree (default true): PRUNE a link that pushes duplicates, announce on
   * pruned links, GRAFT one whose announced events do not arrive (PROTOCOL.md "Relay tree").
   * Only where both ends ask; false: push on every link (a hub, whose peers are leaves).
   */
  treeRelay?: boolean
  /** Announcements on a pruned link go at most this often. Default 6 x maxBatchDelayMs. */
  lazyDelayMs?: number
  /**
   * Announced events missing this long (1-2x per link pair), none of some replica arriving
   * meanwhile, make us GRAFT. Default 2000 ms (a HELLO's: a quarter of it).
   */
  graftDelayMs?: number
  /**
   * Whether the peer acknowledges the events this replica makes (default true: they count as
   * unacknowledged until a durable peer stores them). False for a hub that stores its own
   * events itself (the server's merge events): its messages then ask no ack once synced, and
   * a star of N clients is spared N acks per merge event.
   */
  ackOwnEvents?: boolean
  /** Extra delay of a plain ack (no persist), so it can ride along with events. Default 0. */
  ackDelayMs?: number
  /** How long events may wait for missing parents before NEED is sent. Default 1000 ms. */
  gapTimeoutMs?: number
  /** Shared presence state of this doc. */
  presence?: Presence
  /** Server-bound identity of this link's peer (overrides its presence claims). */
  identity?: Identity
  /**
   * Called as a flush begins, before it reads what to send, with the link's batch window (ms):
   * what it adds to the document goes out in this batch (a hub joins its heads here, so its
   * batches end with its merge event).
   */
  beforeFlush?: (windowMs: number) => void
  /** Called with each batch of new events integrated from this peer, as it integrates. */
  onIntegrated?: (update: Uint8Array) => void
  /** Called on a protocol error on this link (before it closes, for fatal codes). */
  onError?: (err: SyncError) => void
  /** Time source; default real time. */
  clock?: Clock
  /** Replica id announced in HELLO; default the presence id, else the doc's agent. */
  id?: string
}

export type LinkEvents = {
  synced: () => void
  ack: (acked: VersionVector) => void
  error: (err: SyncError) => void
  close: () => void
}

/** One live link. */
export interface Link {
  /** Stops the link and closes the channel. Idempotent. */
  close(): void
  /**
   * Sends an empty ACK: a peer that cannot see its transport's pings (a browser's WebSocket)
   * tells a live link from a dead one by hearing something. Nothing before HELLO or once closed.
   */
  keepAlive(): void
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
  /** Wire statistics of this link, as of the read (a fresh object each time). */
  readonly stats: LinkStats
  /**
   * Relay tree state (PROTOCOL.md "Relay tree"): 'off' (not a tree link: everything is
   * pushed), 'eager' (in the tree: pushed), 'lazy' (out of it: announced).
   */
  readonly tree: 'off' | 'eager' | 'lazy'
  on<E extends keyof LinkEvents>(event: E, handler: LinkEvents[E]): () => void
}

export interface LinkStats {
  messagesSent: number
  bytesSent: number
  messagesReceived: number
  bytesReceived: number
  eventMessagesSent: number
}
