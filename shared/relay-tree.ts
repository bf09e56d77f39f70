/**
 * Relay pruning of one link: Plumtree-style eager and lazy push over version vectors
 * (Leitão, Pereira, Rodrigues, "Epidemic Broadcast Trees", SRDS 2007), used by sync.ts on
 * links where both HELLOs asked for it (PROTOCOL.md "Relay tree").
 *
 * Owns, per link: whether the link is in the relay tree (eager: both ends push what the
 * other lacks, as without pruning) or out of it (lazy: neither end pushes; each announces
 * what it holds, at most every `lazyDelayMs`, as an ACK `have`), what we announced, the
 * duplicate test that prunes, and the graft check. Per replica (shared by its links):
 * when one of them last grafted or rejoined, and how its last link to each peer closed.
 *
 * Decisions: a receiver PRUNEs a link when a batch pushed on it (not a version-vector diff)
 * repeats events it already held, while another of its open links pushes to it. The
 * duplicate proves a second path, so the cut keeps the eager links connected unless prunes
 * race (the sync layer refuses a PRUNE of a replica's last eager link); pruning is
 * symmetric, so the eager links of a connected graph settle on a spanning tree, where
 * batches carry several replicas' events at once. The graft check: when the peer
 * announces events we lack, we look again after `graftDelayMs` (a HELLO's: a quarter of
 * it); if some announced replica is still missing events and none of its events arrived
 * meanwhile (its path is cut; a slow path still delivers), and no link of ours grafted
 * within the delay, we GRAFT; else we keep watching what is still missing. A reconnect
 * starts out of the tree when the last link to that peer closed out of it (or a graft
 * has since mended the tree around it) and the two HELLOs differ by little.
 * Safety does not rest on the tree: on every link, each end either pushes what the peer
 * lacks or announces it; announced events that stay missing end in a GRAFT (a full vv:
 * the peer sends the diff and both ends push again). So an event held anywhere reaches
 * every replica of a connected graph, only later while the tree is cut.
 * Cost: O(agents) per announcement (at most one per `lazyDelayMs` per lazy link, none
 * while nothing changed) and per graft check; O(batch) per pushed batch (its summary).
 */
import type { MutableVV, VersionVector } from './replica.ts'
import { emptyVV, raiseVV, vvCovers } from './protocol.ts'
import { summarizeUpdate } from './update-summary.ts'

/** Timers (the link's clock). */
export interface TreeClock {
  now(): number
  setTimeout(fn: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
}

/**
 * What a replica's tree links share: when one of them last grafted (a graft usually heals
 * the tree for all: the others wait a graft delay before theirs), and which peers' links
 * closed out of the tree (a reconnect of one may start out of it). Bounded.
 */
class TreeMemory {
  lastGraftAt = -Infinity
  /** When some link of ours last rejoined the tree (a GRAFT sent or received). */
  lastRejoinAt = -Infinity
  /** Per peer, how our last link to it closed. */
  readonly closed = new Map<string, { readonly lazy: boolean; readonly at: number }>()
}

const MAX_REMEMBERED = 1024
/** A new link between two replicas in a relay tree, differing by less, may start out of it. */
const LAZY_START_EVENTS = 256

const memories = new WeakMap<object, TreeMemory>()

/** Events in `mine` that `theirs` lacks (per-agent counts). */
export function missingCount(mine: VersionVector, theirs: VersionVector): number {
  let n = 0
  for (const a in mine) n += Math.max(0, mine[a]! - (theirs[a] ?? 0))
  return n
}

/** What the relay tree needs from its link. */
export interface TreeHost {
  /** The replica's version now. */
  version(): VersionVector
  /** The link is still open and the peer's announced events are still missing: GRAFT. */
  graft(): void
}

export class RelayTree {
  /** Out of the tree: neither end pushes on this link; both announce. */
  lazy = false
  /** What we announced on this link since it left the tree. */
  private announced: MutableVV | null = null
  /** Announced by the peer, checked when the timer fires; heard while it runs. */
  private awaited: MutableVV | null = null
  private heardSince: MutableVV | null = null
  /** Our count of each awaited agent when the wait began. */
  private baseline: MutableVV | null = null
  private timer: unknown = null

  private readonly memory: TreeMemory

  constructor(
    replica: object,
    private readonly peerId: string,
    private readonly host: TreeHost,
    private readonly clock: TreeClock,
    readonly lazyDelayMs: number,
    private readonly graftDelayMs: number,
  ) {
    let memory = memories.get(replica)
    if (memory === undefined) memories.set(replica, (memory = new TreeMemory()))
    this.memory = memory
  }

  /** Our last link to this peer closed out of the tree (forgotten once asked). */
  private wasLazy(): boolean {
    const last = this.memory.closed.get(this.peerId)
    this.memory.closed.delete(this.peerId)
    // Closed in the tree, but a graft since has likely mended the tree around it.
    return last !== undefined && (last.lazy || this.memory.lastRejoinAt > last.at)
  }

  /**
   * A batch came on this link (`diff`: a version-vector diff, which may repeat events), of
   * which `fresh` events were new to us (or wait for parents): true when it repeated events
   * we held, so the caller should send PRUNE (and `leave`, if in the tree; out of it, the
   * peer missed that, or pushed before it heard). Not while this is our only link that
   * pushes (`otherEager`). O(batch size): the updates are summarized.
   */
  pushed(updates: readonly Uint8Array[], diff: boolean, fresh: number, otherEager: () => boolean) {
    if (diff) return false
    let events = 0
    for (const u of updates) events += summarizeUpdate(u)?.events ?? 0
    return events > fresh && (this.lazy || otherEager())
  }

  /**
   * Whether a new link starts out of the tree: when our last link to this peer closed out
   * of it (or a graft since has likely mended the tree around it), another link pushes to
   * us, and neither HELLO (`sent`, ours; `peerHave`) lacks LAZY_START_EVENTS of the other's
   * events. Should the peer decide otherwise, its pushed duplicates bring a PRUNE, our
   * announcements of events it lacks a GRAFT.
   */
  startsLazy(sent: VersionVector, peerHave: VersionVector, otherEager: () => boolean): boolean {
    if (!this.wasLazy()) return false
    const small =
      missingCount(sent, peerHave) < LAZY_START_EVENTS &&
      missingCount(peerHave, sent) < LAZY_START_EVENTS
    return small && otherEager()
  }

  /**
   * The link leaves the tree (we sent PRUNE, or the peer did), or starts out of it (`told`:
   * what our HELLO said we hold; else the next announcement names every agent).
   */
  leave(told: VersionVector | null = null): void {
    if (this.lazy) return
    this.lazy = true
    this.announced = told === null ? null : { ...told }
  }

  /** The link rejoins the tree (we sent GRAFT, or the peer did). */
  rejoin(): void {
    this.memory.lastRejoinAt = this.clock.now()
    this.lazy = false
    this.announced = null
    this.awaited = this.heardSince = this.baseline = null
    this.stopTimer()
  }

  /**
   * What to announce now on a lazy link: the entries of our version above what we told the
   * peer already (also those it holds: an announcement doubles as an acknowledgement);
   * null when nothing. O(agents).
   */
  announcement(): VersionVector | null {
    const mine = this.host.version()
    let out: MutableVV | null = null
    const told = (this.announced ??= emptyVV())
    for (const a in mine) {
      const n = mine[a]!
      if (n > (told[a] ?? 0)) {
        ;(out ??= emptyVV())[a] = n
        told[a] = n
      }
    }
    return out
  }

  /**
   * The peer announced `have` (`first`: in its HELLO): if we lack some of it, check again
   * after the graft delay.
   */
  heard(have: VersionVector, first = false): void {
    const mine = this.host.version()
    if (vvCovers(mine, have)) return
    if (this.timer !== null) {
      raiseVV((this.heardSince ??= emptyVV()), have)
      return
    }
    raiseVV((this.awaited ??= emptyVV()), have)
    // A HELLO's version is checked sooner: a link that flaps faster than the graft delay
    // would otherwise never graft a cut tree.
    this.watch(mine, first ? this.graftDelayMs / 4 : this.graftDelayMs)
  }

  /** Notes our count of each awaited agent, and checks again after `ms`. */
  private watch(mine: VersionVector, ms = this.graftDelayMs): void {
    const baseline = (this.baseline = emptyVV())
    for (const a in this.awaited) baseline[a] = mine[a] ?? 0
    this.timer = this.clock.setTimeout(() => this.check(), ms)
  }

  /**
   * Grafts when some awaited agent is both missing and stuck (no event of it arrived in
   * the delay: its path is cut; a slow path still delivers); else keeps watching what is
   * still missing.
   */
  private check(): void {
    this.timer = null
    const awaited = this.awaited!
    const mine = this.host.version()
    let stuck = false
    let missing: MutableVV | null = null
    for (const a in awaited) {
      const n = mine[a] ?? 0
      if (n >= awaited[a]!) continue
      ;(missing ??= emptyVV())[a] = awaited[a]!
      if (n <= this.baseline![a]!) stuck = true
    }
    if (stuck && this.clock.now() - this.memory.lastGraftAt >= this.graftDelayMs) {
      this.memory.lastGraftAt = this.clock.now()
      this.awaited = this.heardSince = this.baseline = null
      this.host.graft()
      return
    }
    // Progress, or another link of ours just grafted (its diff may bring the rest).
    this.awaited = missing
    if (this.heardSince !== null && !vvCovers(mine, this.heardSince)) {
      raiseVV((this.awaited ??= emptyVV()), this.heardSince)
    }
    this.heardSince = null
    if (this.awaited !== null) this.watch(mine)
    else this.baseline = null
  }

  private stopTimer(): void {
    if (this.timer !== null) this.clock.clearTimeout(this.timer)
    this.timer = null
  }

  /** The link closed: no more checks; remember whether it was out of the tree. */
  close(): void {
    const lazy = this.lazy
    this.stopTimer()
    this.awaited = this.heardSince = this.baseline = null
    const closed = this.memory.closed
    closed.delete(this.peerId)
    closed.set(this.peerId, { lazy, at: this.clock.now() })
    if (closed.size > MAX_REMEMBERED) closed.delete(closed.keys().next().value!)
  }
}
