/**
 * What one link knows its peer holds, and the updates that bring the peer up to date
 * (used by sync.ts; PROTOCOL.md "What a link knows of its peer").
 *
 * Owns: the link's cursor in the replica's update log (the peer holds the replica's state as
 * of the cursor, plus every entry that came from the peer), a version-vector lower bound
 * (`base`: the peer's HELLO or NEED `have`, or our version when we last sent; `exact` when it
 * is our version at the cursor) and what the peer announced beyond it (`extra`).
 *
 * Invariants: `base` is never written (it may be a replica's memoised version, shared by
 * many links); every update `next` returns carries only events whose parents the peer
 * holds or receives in the same batch (log order, or a diff against a lower bound).
 * Cost: `next` is O(entries since the cursor); a full diff (handshake, NEED, lost place)
 * scans version vectors, O(agents).
 */
import { copyVV, emptyVV, maxVV, vvCovers } from './protocol.ts'
import type { MutableVV, Replica, VersionVector } from './replica.ts'
import type { LogEntry, UpdateLog } from './update-log.ts'

/** Cursor of a view that will diff version vectors next (pins no log entry). */
export const NO_CURSOR = Number.MAX_SAFE_INTEGER
/** The empty vv, shared and never written. */
export const NO_VV: MutableVV = Object.freeze(emptyVV()) as MutableVV

/** Raises `into` to cover `vv` (in place, O(entries of vv)); true if anything changed. */
export function raise(into: MutableVV, vv: VersionVector): boolean {
  let changed = false
  for (const a in vv) {
    if ((into[a] ?? 0) < vv[a]!) {
      into[a] = vv[a]!
      changed = true
    }
  }
  return changed
}

export function isEmpty(vv: VersionVector): boolean {
  for (const _ in vv) return false
  return true
}

/** What to send the peer now. */
export interface Batch {
  readonly updates: Uint8Array[]
  /** What each update carried (for acks), when asked for. */
  readonly carried: VersionVector[]
  /** Some of it is our own (local) edits. */
  readonly local: boolean
  /** Log entries it covers (several: the link is behind the replica). */
  readonly entries: number
  /** A version-vector diff (handshake, NEED, lost place): its receipt must be acked. */
  readonly full: boolean
  /** Entries skipped because the peer announced them: we announce we hold them too. */
  readonly skipped: VersionVector | null
}

const NOTHING: Batch = {
  updates: [],
  carried: [],
  local: false,
  full: false,
  entries: 0,
  skipped: null,
}

export class PeerView {
  /** Log position: the peer holds our state as of here, plus entries that came from it. */
  cursor = NO_CURSOR
  private needFull = true
  private base: VersionVector = NO_VV
  private exact = false
  private extra: MutableVV = NO_VV

  constructor(
    private readonly doc: Replica,
    private readonly log: UpdateLog,
    /** The origin of entries that came from this peer (its link). */
    private readonly peer: unknown,
    /** Whether an origin is a link (else the entry is a local edit). */
    private readonly isLink: (origin: unknown) => boolean,
  ) {}

  /** HELLO or NEED: the peer holds `have`; the next batch is a version-vector diff. */
  reset(have: VersionVector): void {
    this.base = have
    this.exact = false
    this.extra = NO_VV
    this.needFull = true
    this.cursor = NO_CURSOR
  }

  /** The peer refuses our events: keep nothing for it. */
  refused(): void {
    this.cursor = NO_CURSOR
  }

  /** The peer said it holds these events (an announcement, an ack). */
  heard(vv: VersionVector): void {
    if (this.extra === NO_VV) this.extra = emptyVV()
    raise(this.extra, vv)
  }

  /** A lower bound of what the peer holds. */
  known(): VersionVector {
    return maxVV(this.base, this.extra)
  }

  /**
   * The updates that bring the peer up to date, moving the cursor to the end of the log.
   * `echo`: several entries may go as one update shared by every link at this cursor even
   * if some came from the peer (a hub's links; peers where bytes count never echo).
   * `withCarried`: also say what each update carried when it holds local edits.
   */
  next(echo: boolean, withCarried: boolean): Batch {
    if (this.needFull) return this.fullDiff()
    const entries = this.log.since(this.cursor)
    if (entries === null) {
      // The log dropped our place (the peer lagged too far): diff version vectors.
      this.needFull = true
      return this.fullDiff()
    }
    if (entries.length === 0) return NOTHING
    return this.pick(entries, echo, withCarried)
  }

  /** Handshake, NEED, or a lost place: everything beyond what the peer is known to hold. */
  private fullDiff(): Batch {
    const vv = this.doc.version()
    const since = maxVV(this.base, this.extra)
    const updates = vvCovers(since, vv) ? [] : [this.doc.encodeUpdate(since)]
    this.cursor = this.log.end
    this.base = vv
    this.exact = true
    // What the peer said it holds beyond our version stays known (it may reach us later).
    this.extra = NO_VV
    for (const a in since) {
      if (since[a]! <= (vv[a] ?? 0)) continue
      if (this.extra === NO_VV) this.extra = emptyVV()
      this.extra[a] = since[a]!
    }
    this.needFull = false
    const carried = updates.length > 0 ? [vv] : []
    return { updates, carried, local: false, full: true, entries: 0, skipped: null }
  }

  /**
   * The entries after the cursor that the peer lacks: none if it has them all; one entry as
   * is; several local edits as one update of just them; else, when `base` is our version at
   * the cursor, one update encoded against it (shared by every link at that cursor; with
   * `echo`, events the peer sent may ride along, which it drops as known), or one update
   * against `base` plus what the peer holds; else the entries as they are.
   */
  private pick(entries: readonly LogEntry[], echo: boolean, withCarried: boolean): Batch {
    const send: LogEntry[] = []
    /** Entries the peer holds (it sent them, or announced them). */
    const held: LogEntry[] = []
    let skipped: MutableVV | null = null
    let local = false
    const announced = !isEmpty(this.extra)
    for (const e of entries) {
      if (e.origin === this.peer) {
        held.push(e)
        continue
      }
      const sum = announced ? e.summary : null
      if (sum !== null && vvCovers(this.extra, sum.vv)) {
        // The peer has it from elsewhere; we tell it we have it too.
        raise((skipped ??= emptyVV()), sum.vv)
        held.push(e)
        continue
      }
      send.push(e)
      if (!this.isLink(e.origin)) local = true
    }
    this.cursor = this.log.end
    if (send.length === 0) {
      this.exact = false
      return { ...NOTHING, local, skipped }
    }
    let updates: Uint8Array[]
    const own = send.length > 1 && local ? this.encodeLocal(send) : null
    if (send.length === 1) updates = [send[0]!.bytes]
    else if (own !== null) updates = [own]
    else if (
      this.exact &&
      (held.length === 0 || (echo && skipped === null && held.length <= send.length))
    ) {
      updates = [this.log.encodeSince(this.base)]
    } else if (this.exact) {
      // Just what the peer lacks: our version at the cursor plus what it holds.
      const since = copyVV(this.base)
      let known = true
      for (const e of held) {
        const sum = e.summary
        if (sum === null) known = false
        else raise(since, sum.vv)
      }
      updates = known ? [this.doc.encodeUpdate(since)] : send.map((e) => e.bytes)
    } else updates = send.map((e) => e.bytes)
    // What the peer holds once it has these: our version now (a hub's replica memoises
    // it, so links flushing together share one object and one encoding next time).
    const vv = this.doc.version()
    const carried: VersionVector[] = []
    if (withCarried || local) for (const e of send) carried.push(e.summary?.vv ?? vv)
    this.base = vv
    this.exact = true
    if (this.extra !== NO_VV && vvCovers(vv, this.extra)) this.extra = NO_VV
    return { updates, carried, local, full: false, entries: send.length, skipped }
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
      const sum = this.isLink(e.origin) ? null : e.summary
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
}
