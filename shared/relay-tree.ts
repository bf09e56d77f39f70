/**
 * Relay pruning of one link: Plumtree-style eager and lazy push over version vectors
 * (Leitão, Pereira, Rodrigues, "Epidemic Broadcast Trees", SRDS 2007), used by sync.ts on
 * links where both HELLOs asked for it (PROTOCOL.md "Relay tree").
 *
 * Owns, per link: whether the link is in the relay tree (eager: both ends push what the
 * other lacks, as without pruning) or out of it (lazy: neither end pushes; each announces
 * what it holds, at most every `lazyDelayMs`, as an ACK `have`), what we announced, and the
 * graft check: events the peer announced that we still lack `graftDelayMs` later (between
 * one and two delays after the announcement) make us GRAFT the link back.
 *
 * Decisions: a receiver PRUNEs a link when a batch pushed on it (not a version-vector diff)
 * repeats events it already held, while it has another open eager link (so a replica
 * never cuts its last one). The duplicate proves a second path, so the cut keeps the
 * eager links connected unless prunes race; pruning is symmetric, so in a quiet stretch
 * the eager links of a connected graph settle on a spanning tree, where batches carry
 * several replicas' events at once.
 * Safety does not rest on the tree: on every link, each end either pushes what the peer
 * lacks or announces it; an announcement of events the receiver lacks ends, within two
 * graft delays, in GRAFT (a full vv: the peer sends the diff and both ends push again);
 * a new link (a reconnect) starts eager. So an event held anywhere reaches every replica
 * of a connected graph, only later when the tree is broken.
 * Cost: O(agents) per announcement (at most one per `lazyDelayMs` per lazy link, none
 * while nothing changed) and per graft check; nothing on an eager link beyond a count.
 */
import type { MutableVV, VersionVector } from './replica.ts'
import { emptyVV, vvCovers } from './protocol.ts'

/** Timers (the link's clock). */
export interface TreeClock {
  setTimeout(fn: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
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
  private timer: unknown = null

  constructor(
    private readonly host: TreeHost,
    private readonly clock: TreeClock,
    readonly lazyDelayMs: number,
    private readonly graftDelayMs: number,
  ) {}

  /**
   * A batch pushed to us on this link (`diff`: a version-vector diff, which may repeat
   * events) brought `duplicates` events we already held: true when the link should leave
   * the tree (the caller sends PRUNE and calls `leave`). `otherEager`: we have another open
   * link that pushes to us.
   */
  shouldPrune(duplicates: number, diff: boolean, otherEager: boolean): boolean {
    return duplicates > 0 && !diff && !this.lazy && otherEager
  }

  /** The link leaves the tree (we sent PRUNE, or the peer did). */
  leave(): void {
    if (this.lazy) return
    this.lazy = true
    this.announced = null
  }

  /** The link rejoins the tree (we sent GRAFT, or the peer did). */
  rejoin(): void {
    this.lazy = false
    this.announced = null
    this.awaited = this.heardSince = null
    this.stopTimer()
  }

  /**
   * What to announce now on a lazy link: the entries of our version above both what the
   * peer is known to hold and what we told it already; null when nothing. O(agents).
   */
  announcement(peerHolds: VersionVector): VersionVector | null {
    const mine = this.host.version()
    let out: MutableVV | null = null
    const told = (this.announced ??= emptyVV())
    for (const a in mine) {
      const n = mine[a]!
      if (n > (peerHolds[a] ?? 0) && n > (told[a] ?? 0)) {
        ;(out ??= emptyVV())[a] = n
        told[a] = n
      }
    }
    return out
  }

  /** The peer announced `have`: if we lack some of it, check again after the graft delay. */
  heard(have: VersionVector): void {
    if (vvCovers(this.host.version(), have)) return
    if (this.timer === null) {
      this.awaited = raiseInto(this.awaited, have)
      this.timer = this.clock.setTimeout(() => this.check(), this.graftDelayMs)
    } else this.heardSince = raiseInto(this.heardSince, have)
  }

  private check(): void {
    this.timer = null
    const awaited = this.awaited
    this.awaited = null
    if (awaited !== null && !vvCovers(this.host.version(), awaited)) {
      this.heardSince = null
      this.host.graft()
      return
    }
    const next = this.heardSince
    this.heardSince = null
    if (next !== null) this.heard(next)
  }

  private stopTimer(): void {
    if (this.timer !== null) this.clock.clearTimeout(this.timer)
    this.timer = null
  }

  /** The link closed: no more checks. */
  close(): void {
    this.stopTimer()
    this.awaited = this.heardSince = null
  }
}

function raiseInto(into: MutableVV | null, vv: VersionVector): MutableVV {
  const out = into ?? emptyVV()
  for (const a in vv) if ((out[a] ?? 0) < vv[a]!) out[a] = vv[a]!
  return out
}
