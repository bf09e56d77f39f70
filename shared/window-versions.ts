/**
 * Version vectors for a kept merge (walker.ts): the prepare version, and the version each walked
 * entry was made on, so that moving the prepare version to an event's parents is a per-agent
 * comparison instead of a walk back through the graph.
 *
 * Only events from the merge's `base` on matter: every event below it is an ancestor of every
 * event walked (the conflict zone's property), so a vector here counts an agent's events from
 * seq 0 but never below `floor` (the agent's events under `base`). An agent's events are
 * causally chained, so the events of agent a in a version are a prefix of a's seqs: two
 * versions differ, for a, by the seq range between their counts.
 *
 * The same vectors reduce an incoming event's parents to a frontier (`minimal`): p is an
 * ancestor of q when q's version counts p's seq.
 *
 * Cost per move: O(agents x parents) steps on typed arrays (Int32Array: an agent's count is at
 * most the graph's events, and a merge keeps no window versions past `MAX_EVENTS`), plus a
 * binary search per agent that differs. The versions of the last walked entries are kept, as
 * far back as the walks reach (up to `MAX_ENTRIES`); a parent older than that (or under `base`)
 * returns null and the caller walks the graph instead, then hands the result back through
 * `adjust`.
 */
import {
  type CausalGraph,
  type Frontier,
  type LV,
  SEQ,
  SEQ_END,
  SPAN,
  SPAN_LV,
  createGraph,
  findEntry,
  nextSeq,
} from './causal-graph.ts'
import type { Ranges } from './graph-diff.ts'
import { anchorShape } from './shape-anchors.ts'

/** Events a graph may hold for window versions: every count fits an Int32Array slot. */
export const MAX_EVENTS = 2 ** 31 - 1

/** Walked entries whose versions are kept: parents are nearly always recent events. */
const MAX_ENTRIES = 1024
/**
 * Rows a ring starts with; it grows four times (up to `MAX_ENTRIES`) only when a parent's row
 * had been overwritten. Rows are as wide as the agents: a long ring nobody reaches back into
 * costs memory and cache misses (1,024 rows of 300 agents are 2.4 MB per document).
 */
const FIRST_ROWS = 64
/** Rows start as wide as the graph's agents up to this: many past agents, few writing now. */
const FIRST_WIDTH = 256
/** Most events a graph may have for rows of 16-bit counts. */
const SHORT_COUNTS = 0xffff

export class WindowVersions {
  private readonly index = new Map<string, number>()
  private readonly agents: string[] = []
  /** Per agent index: how many of its events lie below `base` (room for more agents after them). */
  private floor: Int32Array = new Int32Array(0)
  /**
   * The versions walked entries were made on, one row each in a ring of at most `MAX_ENTRIES`
   * rows of `width` counts (no allocation per entry): `rowOf` finds an entry's row by the LV
   * of its first event (`rowKey`: rows are written in LV order, so the keys ascend around the
   * ring); a row holds the agents known when it was written (`rowAgents`), any later agent is at
   * its floor there. Counts take 16 bits while the graph has at most `SHORT_COUNTS` events
   * (every count is at most the graph's events), else 32: the ring is most of what a lagging
   * replica's merge touches per walked entry, and a star of 200 writers gives rows of 200
   * counts (in a load process of 100 such replicas, writing a row was a tenth of its time).
   */
  private rows: Uint16Array | Int32Array = new Uint16Array(0)
  private width = 0
  private capacity = 0
  /** Rows written since the ring last moved (`resize`): the next goes to `written % capacity`. */
  private written = 0
  /** The newest entry whose row was overwritten (-1: none). */
  private evicted: LV = -1
  /** A parent's row had been overwritten since the ring last grew. */
  private short = false
  private rowKey: Int32Array = new Int32Array(0)
  private rowAgents: number[] = []
  /** The prepare version. */
  private prep: Int32Array = new Int32Array(0)
  /**
   * Scratch for the version being computed: a move's target until `enter`, or a passed-over
   * merge event's version (`note`, between two walked entries).
   */
  private next: Int32Array = new Int32Array(0)
  /** Scratch for `minimal`, one slot per LV. */
  private at = new Int32Array(0)
  private span = new Int32Array(0)
  private ag = new Int32Array(0)
  private sq = new Int32Array(0)

  /**
   * Agents are indexed as the walk meets them, so vectors and rows are as long as the agents
   * writing since `base`, not every agent the document ever had (rows widen by half when
   * they outgrow them, copying the ring: at most `MAX_ENTRIES` rows).
   */
  constructor(
    private readonly cg: CausalGraph,
    private readonly base: LV,
  ) {
    // Rows start as wide as the graph's agents (up to `FIRST_WIDTH`): widening copies the ring,
    // and a walk meeting its agents one by one widened it about ten times (3% of a busy star's
    // merge time).
    this.width = Math.min(cg.agents.size, FIRST_WIDTH)
  }

  /** The agent's index here, added (with its floor) on first sight. */
  private agentIndex(agent: string): number {
    let i = this.index.get(agent)
    if (i !== undefined) return i
    i = this.agents.length
    this.index.set(agent, i)
    this.agents.push(agent)
    if (i === this.floor.length) {
      const floor = new Int32Array(Math.max(8, 2 * i))
      floor.set(this.floor)
      this.floor = floor
    }
    this.floor[i] = this.countBelowBase(agent)
    return i
  }

  private countBelowBase(agent: string): number {
    const spans = this.cg.agents.get(agent)
    if (spans === undefined) return 0
    let n = 0
    for (let s = spans.length - SPAN; s >= 0; s -= SPAN) {
      const lv = spans[s + SPAN_LV]
      if (lv >= this.base) continue
      // The first span reaching below base: its events under base, and all before it.
      n = spans[s + SEQ] + Math.min(spans[s + SEQ_END] - spans[s + SEQ], this.base - lv)
      break
    }
    return n
  }

  /** `v` widened to every known agent, the new ones at their floor (a vector never holds more). */
  private widen(v: Int32Array): Int32Array {
    const n = this.agents.length
    if (v.length >= n) return v
    const out = new Int32Array(n)
    out.set(v)
    for (let i = v.length; i < n; i++) out[i] = this.floor[i]
    return out
  }

  /**
   * The events to retreat (in the prepare version, not in `parents`) and to advance (the
   * reverse), or null when a parent is not here (under `base` alone, or walked too long ago).
   * On success the vector of `parents` is the scratch `next` until `enter`.
   */
  moveTo(parents: Frontier): { aOnly: number[]; bOnly: number[] } | null {
    const next = this.versionOf(parents, this.next)
    if (next === null) return null
    this.next = next
    this.prep = this.widen(this.prep)
    return this.rangesBetween(this.prep, next)
  }

  /** The vector of `parents` in `out` (or a wider copy of it), or null when a row is missing. */
  private versionOf(parents: Frontier, out: Int32Array): Int32Array | null {
    const cg = this.cg
    let found = false
    let next = out
    for (const p of parents) {
      if (p < this.base) continue // its history is all under base: the floor
      const e = cg.entries[findEntry(cg, p)]
      const row = this.rowOf(e.start)
      if (row < 0) return this.missing(e.start)
      const a = this.agentIndex(e.agent)
      next = this.widen(next)
      const rows = this.rows
      const at = row * this.width
      const n = this.rowAgents[row]
      if (!found) {
        // The first parent's row, the floor for agents it predates (what every row is above).
        next.set(rows.subarray(at, at + n))
        if (n < next.length) next.set(this.floor.subarray(n, next.length), n)
      } else {
        for (let i = 0; i < n; i++) if (rows[at + i] > next[i]) next[i] = rows[at + i]
      }
      const own = e.seq + (p - e.start) + 1
      if (own > next[a]) next[a] = own
      found = true
    }
    return found ? next : null
  }

  /**
   * A merge event's entry (from `entryStart`, made on `parents`) was passed over without moving
   * the prepare version: keeps its version, for the events made on it. False when a parent has
   * no row: the caller then walks the graph (`noteMoved`), else every merge event after it
   * would lack one too (each names the one before).
   */
  note(entryStart: LV, parents: Frontier): boolean {
    const v = this.versionOf(parents, this.next)
    if (v === null) return false
    this.next = v
    this.keep(entryStart, v)
    return true
  }

  /** `note` for a merge event made on the prepare version less `aOnly`, plus `bOnly`. */
  noteMoved(entryStart: LV, aOnly: Ranges, bOnly: Ranges): void {
    this.adjust(aOnly, bOnly)
    this.keep(entryStart, this.next)
  }

  /**
   * `lvs` without duplicates and without ancestors of the others, ascending; null when one is
   * not here (under `base` with nothing above it, or not walked, or walked too long ago).
   * O(k^2) for k LVs: p is an ancestor of q when q's version counts p's seq.
   */
  minimal(lvs: readonly LV[]): LV[] | null {
    const cg = this.cg
    const k = lvs.length
    if (this.at.length < k) {
      this.at = new Int32Array(k + (k >> 1))
      this.span = new Int32Array(this.at.length)
      this.ag = new Int32Array(this.at.length)
      this.sq = new Int32Array(this.at.length)
    }
    // Per LV: where its entry's row starts (-1 under base), how many agents that row holds,
    // its agent, and its seq (the count of its agent's events before it).
    const { at, span, ag, sq } = this
    let above = false
    for (let i = 0; i < k; i++) {
      const lv = lvs[i]
      if (lv < this.base) {
        at[i] = -1
        continue
      }
      const e = cg.entries[findEntry(cg, lv)]
      const row = this.rowOf(e.start)
      if (row < 0) return this.missing(e.start)
      at[i] = row * this.width
      span[i] = this.rowAgents[row]
      ag[i] = this.agentIndex(e.agent)
      sq[i] = e.seq + (lv - e.start)
      above = true
    }
    if (!above) return null
    const rows = this.rows
    const out: LV[] = []
    for (let i = 0; i < k; i++) {
      // An event under base is an ancestor of every event above it.
      if (at[i] < 0) continue
      const a = ag[i]
      const s = sq[i]
      let dominated = false
      for (let j = 0; j < k; j++) {
        if (at[j] < 0) continue
        // q's version counts, for agent a: its own seq if a is q's agent, else its row's count
        // (an agent the row predates is at its floor, which no seq above base is below).
        const count = ag[j] === a ? sq[j] : a < span[j] ? rows[at[j] + a] : 0
        if (count > s) {
          dominated = true
          break
        }
      }
      if (!dominated) out.push(lvs[i])
    }
    // Equal LVs were all kept (none counts itself): keep one.
    out.sort((x, y) => x - y)
    let w = 0
    for (let i = 0; i < out.length; i++) if (w === 0 || out[i] !== out[w - 1]) out[w++] = out[i]
    out.length = w
    return out
  }

  /**
   * Per agent, the seq ranges one vector has and the other lacks, as LV ranges, by agent (not
   * by LV: the walk's toggles commute, and sorting cost a busy star's merges 2-3%), flat: start,
   * end, start, end... (a pair per range was a sixth of the bytes a load client's merges made).
   */
  private rangesBetween(from: Int32Array, to: Int32Array): { aOnly: number[]; bOnly: number[] } {
    const aOnly: number[] = []
    const bOnly: number[] = []
    const n = this.agents.length
    for (let i = 0; i < n; i++) {
      const f = from[i]
      const t = to[i]
      if (f === t) continue
      if (f > t) this.lvRanges(this.agents[i], t, f, aOnly)
      else this.lvRanges(this.agents[i], f, t, bOnly)
    }
    return { aOnly, bOnly }
  }

  /** Pushes the LV ranges of `agent`'s seqs `from .. to`. */
  private lvRanges(agent: string, from: number, to: number, out: number[]): void {
    const spans = this.cg.agents.get(agent)!
    let lo = 0
    let hi = spans.length / SPAN - 1
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (spans[mid * SPAN + SEQ_END] <= from) lo = mid + 1
      else hi = mid
    }
    for (let s = lo * SPAN; s < spans.length && from < to; s += SPAN) {
      const end = Math.min(to, spans[s + SEQ_END])
      const lv = spans[s + SPAN_LV] - spans[s + SEQ]
      out.push(lv + from, lv + end)
      from = end
    }
  }

  /**
   * The caller moved the prepare version by a graph walk: the vector of the new prepare version
   * is the old one less `aOnly`, plus `bOnly` (as the scratch `next`, until `enter`).
   */
  adjust(aOnly: Ranges, bOnly: Ranges): void {
    this.stay()
    this.next = this.count(aOnly, this.next, -1)
    this.next = this.count(bOnly, this.next, 1)
  }

  /** `v` with `sign` x the events of `ranges` counted in (widened when they name new agents). */
  private count(ranges: Ranges, v: Int32Array, sign: 1 | -1): Int32Array {
    const cg = this.cg
    for (const [start, end] of ranges) {
      for (let lv = start; lv < end;) {
        const e = cg.entries[findEntry(cg, lv)]
        const stop = Math.min(end, e.end)
        const a = this.agentIndex(e.agent)
        if (a >= v.length) v = this.widen(v)
        v[a] += sign * (stop - lv)
        lv = stop
      }
    }
    return v
  }

  /**
   * The row of the entry starting at `key`, or -1: a binary search of the ring's keys, oldest
   * first (a Map from key to row cost a set and a delete per walked entry, 2.5% of a busy
   * star's merge time).
   */
  private rowOf(key: LV): number {
    const cap = this.capacity
    const first = this.written - Math.min(this.written, cap)
    let lo = first
    let hi = this.written - 1
    const keys = this.rowKey
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1
      const k = keys[mid % cap]
      if (k === key) return mid % cap
      if (k < key) lo = mid + 1
      else hi = mid - 1
    }
    return -1
  }

  /** Whether every count fits 16 bits: none exceeds the graph's events. */
  private countsFit16(): boolean {
    return this.cg.next <= SHORT_COUNTS
  }

  /** Writes `v` as the row of the entry starting at `key`, over the oldest row once full. */
  private keep(key: LV, v: Int32Array): void {
    const n = this.agents.length
    if (this.ringMustChange()) {
      const grow = this.capacity === 0 || (this.short && this.capacity < MAX_ENTRIES)
      this.resize(Math.max(this.width, n + (n >> 1), 4), grow)
    }
    const last = this.written > 0 ? this.rowKey[(this.written - 1) % this.capacity] : -1
    if (key <= last) {
      // Keys must ascend for `rowOf`. Walks go forward in LV order, so this does not happen;
      // if it did, forgetting the rows is safe (a missing row means a graph walk).
      this.evicted = Math.max(this.evicted, last)
      this.written = 0
    }
    const row = this.claimRow(key, n)
    // A copy by `set` (a native loop): element stores in JS were most of this move's cost.
    this.rows.set(v.length === n ? v : v.subarray(0, n), row * this.width)
  }

  /** Whether the ring must widen, grow or take 32-bit counts before its next row. */
  private ringMustChange(): boolean {
    return (
      this.agents.length > this.width ||
      this.capacity === 0 ||
      (this.short && this.capacity < MAX_ENTRIES) ||
      (this.rows instanceof Uint16Array && !this.countsFit16())
    )
  }

  /** The ring's next row, now keyed `key` and holding `agents` counts (evicting the oldest). */
  private claimRow(key: LV, agents: number): number {
    const row = this.written++ % this.capacity
    if (this.written > this.capacity) this.evicted = this.rowKey[row]
    this.rowKey[row] = key
    this.rowAgents[row] = agents
    return row
  }

  /**
   * A parent's entry has no row: null for the caller (it walks the graph), and when its row was
   * overwritten, the ring is too short for these walks (it grows at the next `keep`).
   */
  private missing(entryStart: LV): null {
    if (entryStart <= this.evicted) this.short = true
    return null
  }

  /**
   * Rows of `width` counts, the ring four times longer (up to `MAX_ENTRIES`) when `grow`; the
   * kept rows move to its start, oldest first.
   */
  private resize(width: number, grow: boolean): void {
    const old = this.capacity
    const capacity = grow ? Math.min(MAX_ENTRIES, old === 0 ? FIRST_ROWS : 4 * old) : old
    const rows =
      this.rows instanceof Uint16Array && this.countsFit16()
        ? new Uint16Array(capacity * width)
        : new Int32Array(capacity * width)
    const used = Math.min(this.written, old)
    const keys = new Int32Array(capacity)
    const agents: number[] = []
    for (let k = 0; k < used; k++) {
      const r = (this.written - used + k) % old
      const n = this.rowAgents[r]
      rows.set(this.rows.subarray(r * this.width, r * this.width + n), k * width)
      keys[k] = this.rowKey[r]
      agents.push(n)
    }
    this.rows = rows
    this.rowKey = keys
    this.rowAgents = agents
    this.written = used
    this.width = width
    this.capacity = capacity
    this.short = false
  }

  /**
   * Window versions turned on mid-walk: the prepare version is every event of the graph less
   * `missing` (LV ranges; none under base).
   */
  startAt(missing: Ranges): void {
    for (const agent of this.cg.agents.keys()) this.agentIndex(agent)
    const prep = (this.prep = this.widen(this.prep))
    for (let i = 0; i < this.agents.length; i++) prep[i] = nextSeq(this.cg, this.agents[i])
    this.prep = this.count(missing, prep, -1)
  }

  /**
   * `enter` for a sibling of the run entered last (made on the same parents; its first event was
   * `lastAgent`'s `lastSeq`, at LV `lastLv`): the prepare version loses that run and gains this
   * one, in place, and this entry's row is a copy of the last one's when that is the last row
   * (the same version). O(1) but for the row copy, a memmove; `moveTo`, then `enter`, compare
   * and convert every agent's count twice.
   */
  enterSibling(
    lastAgent: string,
    lastSeq: number,
    lastLv: LV,
    entryStart: LV,
    agent: string,
    seqAtLv: number,
    lv: LV,
    end: LV,
  ): void {
    this.prep[this.agentIndex(lastAgent)] = lastSeq
    const a = this.agentIndex(agent)
    const prep = (this.prep = this.widen(this.prep))
    if (lv === entryStart && !this.copyLastRow(lastLv, entryStart)) this.keep(entryStart, prep)
    prep[a] = seqAtLv + (end - lv)
  }

  /** Writes the last row again under `key` when its key is `lastKey` and the ring needs no change. */
  private copyLastRow(lastKey: LV, key: LV): boolean {
    if (this.written === 0 || this.ringMustChange()) return false
    const from = (this.written - 1) % this.capacity
    if (this.rowKey[from] !== lastKey || key <= lastKey) return false
    const n = this.rowAgents[from]
    const row = this.claimRow(key, n)
    this.rows.copyWithin(row * this.width, from * this.width, from * this.width + n)
    return true
  }

  /** The event to apply is made on the prepare version itself: `next` is that version. */
  stay(): void {
    this.prep = this.widen(this.prep)
    const next = (this.next = this.widen(this.next))
    next.set(this.prep.subarray(0, Math.min(this.prep.length, next.length)))
  }

  /**
   * Events `lv .. end` of the entry starting at `entryStart` (by `agent`, `lv` being its seq
   * `seqAtLv`), made on the version in `next`, were applied: they are the prepare version now.
   * The entry's version is kept when `lv` is its first event.
   */
  enter(entryStart: LV, agent: string, seqAtLv: number, lv: LV, end: LV): void {
    const a = this.agentIndex(agent)
    const next = (this.next = this.widen(this.next))
    if (lv === entryStart) this.keep(entryStart, next)
    // The old prepare vector becomes the next scratch.
    const prep = this.next
    this.next = this.prep
    this.prep = prep
    prep[a] = seqAtLv + (end - lv)
  }
}
anchorShape(() => new WindowVersions(createGraph(), 0))
