/**
 * The causal graph: every event's id `(agent, seq)`, its local version (LV: a
 * dense integer assigned in the order events are added here) and its parents.
 *
 * Invariants: LVs are assigned in a topological order (an event's parents have
 * smaller LVs); one agent's events are totally ordered and numbered 0, 1, 2, …
 * without gaps. Storage is run-length encoded: a run of events by one agent with
 * consecutive seqs, each the only parent of the next, is one entry, so typing a
 * paragraph costs one record. Lookups are binary searches, O(log runs).
 */

/** A local version: an event's index in this replica's graph. */
export type LV = number
/** A set of events with no descendants among them, sorted ascending. */
export type Frontier = readonly LV[]
/** What a replica holds: for each agent, the number of its events (its next seq). */
export type VersionVector = { readonly [agent: string]: number }

export interface GraphEntry {
  readonly start: LV
  end: LV
  readonly agent: string
  readonly seq: number
  /** Parents of the entry's first event; every later event's parent is its predecessor. */
  readonly parents: Frontier
}

/**
 * An agent's events, as runs of consecutive seqs with consecutive LVs: flat triples
 * `seq, seqEnd, lv` (run i at `3i`). Numbers only: a run per remote edit costs no object, and
 * storing it writes no pointer into an old array (with parents arrays shared between sibling
 * entries, 9% less heap per document on recorded load-client streams).
 */
export type AgentSpans = number[]
/** Offsets within a triple of `AgentSpans`, and its length. */
export const SEQ = 0
export const SEQ_END = 1
export const SPAN_LV = 2
export const SPAN = 3

export interface CausalGraph {
  readonly entries: GraphEntry[]
  readonly agents: Map<string, AgentSpans>
  /**
   * The frontier of every event. `addEvents` changes this array in place, so no one may keep
   * it: copy it to hold on to it. (An event made on the heads takes the array as its parents,
   * and the heads become a new array: from then on, it is the event's alone.)
   */
  heads: LV[]
  next: LV
}

export function createGraph(): CausalGraph {
  return { entries: [], agents: new Map(), heads: [], next: 0 }
}

/** The next seq `agent` will use here: the number of its events we hold. */
export function nextSeq(cg: CausalGraph, agent: string): number {
  const spans = cg.agents.get(agent)
  return spans === undefined ? 0 : spans[spans.length - SPAN + SEQ_END]
}

/** Index of the entry holding `lv`. */
export function findEntry(cg: CausalGraph, lv: LV): number {
  const entries = cg.entries
  let lo = 0
  let hi = entries.length - 1
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1
    const e = entries[mid]
    if (lv < e.start) hi = mid - 1
    else if (lv >= e.end) lo = mid + 1
    else return mid
  }
  throw new RangeError(`LV ${lv} is not in the causal graph (${cg.next} events)`)
}

export function lvToRaw(cg: CausalGraph, lv: LV): [agent: string, seq: number] {
  const e = cg.entries[findEntry(cg, lv)]
  return [e.agent, e.seq + (lv - e.start)]
}

export function agentOf(cg: CausalGraph, lv: LV): string {
  return cg.entries[findEntry(cg, lv)].agent
}

/** The LV of event `(agent, seq)`, or -1 when we do not have it. */
export function rawToLv(cg: CausalGraph, agent: string, seq: number): LV {
  const spans = cg.agents.get(agent)
  if (spans === undefined) return -1
  let hi = spans.length / SPAN - 1
  // Parents and acks name an agent's latest events most of the time.
  const last = hi * SPAN
  if (seq >= spans[last + SEQ])
    return seq < spans[last + SEQ_END] ? spans[last + SPAN_LV] + (seq - spans[last + SEQ]) : -1
  let lo = 0
  hi--
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1
    const s = mid * SPAN
    if (seq < spans[s + SEQ]) hi = mid - 1
    else if (seq >= spans[s + SEQ_END]) lo = mid + 1
    else return spans[s + SPAN_LV] + (seq - spans[s + SEQ])
  }
  return -1
}

/** The LV of `(agent, seq)` and how many of the agent's next events follow it contiguously, or null. */
export function rawToLvSpan(cg: CausalGraph, agent: string, seq: number): [LV, number] | null {
  const lv = rawToLv(cg, agent, seq)
  if (lv < 0) return null
  const e = cg.entries[findEntry(cg, lv)]
  return [lv, e.end - lv]
}

/** Parents of the single event `lv`. */
export function parentsOf(cg: CausalGraph, lv: LV): Frontier {
  const e = cg.entries[findEntry(cg, lv)]
  return lv === e.start ? e.parents : [lv - 1]
}

/**
 * Adds events `(agent, seq .. seq+len)` whose first has `parents` (all already
 * here) and returns the LV of the first. The caller checks that seq is the
 * agent's next seq. Extends the last entry when the events continue it.
 */
export function addEvents(
  cg: CausalGraph,
  agent: string,
  seq: number,
  len: number,
  parents: Frontier,
): LV {
  const start = cg.next
  const end = start + len
  const last = cg.entries[cg.entries.length - 1]
  if (
    last !== undefined &&
    last.end === start &&
    last.agent === agent &&
    last.seq + (last.end - last.start) === seq &&
    parents.length === 1 &&
    parents[0] === start - 1
  ) {
    last.end = end
  } else {
    // Parents are never changed in place (the heads are, but an entry on them takes the old array),
    // so entries made on the same parents share one array: in a busy star most entries are
    // siblings of the one before (many writers on one version), and each array is kept for good.
    const shared =
      last !== undefined && frontierEquals(last.parents, parents) ? last.parents : parents
    cg.entries.push({ start, end, agent, seq, parents: shared })
  }
  let spans = cg.agents.get(agent)
  if (spans === undefined) cg.agents.set(agent, (spans = []))
  const lastSpan = spans.length - SPAN
  if (
    lastSpan >= 0 &&
    spans[lastSpan + SPAN_LV] + (spans[lastSpan + SEQ_END] - spans[lastSpan + SEQ]) === start
  ) {
    spans[lastSpan + SEQ_END] = seq + len
  } else {
    spans.push(seq, seq + len, start)
  }
  advanceHeads(cg, parents, end - 1)
  cg.next = end
  return start
}

/**
 * The heads after adding event `lv` (made on `parents`): in place, as no one else holds them.
 * A copy per event cost a lagging replica in a star of 200 writers (about 50 heads) a fifth of
 * the bytes its merges allocated.
 */
function advanceHeads(cg: CausalGraph, parents: Frontier, lv: LV): void {
  const heads = cg.heads
  // Typing on the current version: the new event is the only head (the old array may now be
  // the event's parents).
  if (parents === heads || frontierEquals(parents, heads)) {
    cg.heads = [lv]
    return
  }
  // Both ascending: one merge pass (wide frontiers, as with many concurrent writers, make a
  // search per head quadratic). `lv` is newer than every head, so it goes last.
  let k = 0
  for (let i = 0, j = 0; i < heads.length; i++) {
    const f = heads[i]
    while (j < parents.length && parents[j] < f) j++
    if (j === parents.length || parents[j] !== f) heads[k++] = f
  }
  // (No `length = k` then a push: a shorter length may trim the array, and the push regrow it.)
  if (k < heads.length) {
    heads[k] = lv
    heads.length = k + 1
  } else heads.push(lv)
}

export function frontierEquals(a: Frontier, b: Frontier): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** The version vector of everything in the graph. */
export function versionVector(cg: CausalGraph): VersionVector {
  const vv: { [agent: string]: number } = {}
  for (const [agent, spans] of cg.agents) {
    const n = spans[spans.length - SPAN + SEQ_END]
    // defineProperty, so an agent named `__proto__` is an ordinary key.
    if (agent === '__proto__')
      Object.defineProperty(vv, agent, {
        value: n,
        enumerable: true,
        writable: true,
        configurable: true,
      })
    else vv[agent] = n
  }
  return vv
}

/** Reads `vv[agent]` as an own property only (wire data may name `__proto__`). */
export function vvGet(vv: VersionVector, agent: string): number {
  return Object.prototype.hasOwnProperty.call(vv, agent) ? vv[agent] : 0
}

/**
 * LV ranges `[start, end)` of the events we hold that a replica at `vv` lacks,
 * ascending. Since both sides hold causally closed sets, this set is closed
 * under descendants here.
 */
export function rangesMissingFrom(cg: CausalGraph, vv: VersionVector): [LV, LV][] {
  const ranges: [LV, LV][] = []
  for (const [agent, spans] of cg.agents) {
    const have = vvGet(vv, agent)
    // Binary search for the first span the holder lacks part of.
    let lo = 0
    let hi = spans.length / SPAN
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (spans[mid * SPAN + SEQ_END] <= have) lo = mid + 1
      else hi = mid
    }
    for (let s = lo * SPAN; s < spans.length; s += SPAN) {
      const from = Math.max(spans[s + SEQ], have)
      const lv = spans[s + SPAN_LV] - spans[s + SEQ]
      ranges.push([lv + from, lv + spans[s + SEQ_END]])
    }
  }
  ranges.sort((a, b) => a[0] - b[0])
  return joinAdjacent(ranges)
}

/** Ascending ranges `[start, end)` with the ones that touch joined (new tuples; input unchanged). */
export function joinAdjacent(ranges: readonly (readonly [LV, LV])[]): [LV, LV][] {
  const out: [LV, LV][] = []
  for (const [start, end] of ranges) {
    const last = out[out.length - 1]
    if (last !== undefined && last[1] === start) last[1] = end
    else out.push([start, end])
  }
  return out
}

/** Forgets every event from LV `next` on (undoing a failed merge). */
export function truncateGraph(
  cg: CausalGraph,
  next: LV,
  entries: number,
  lastEntryEnd: LV,
  heads: LV[],
): void {
  cg.entries.length = entries
  if (entries > 0) cg.entries[entries - 1].end = lastEntryEnd
  for (const [agent, spans] of cg.agents) {
    while (spans.length > 0 && spans[spans.length - SPAN + SPAN_LV] >= next) spans.length -= SPAN
    const last = spans.length - SPAN
    if (last < 0) cg.agents.delete(agent)
    else if (spans[last + SPAN_LV] + (spans[last + SEQ_END] - spans[last + SEQ]) > next)
      spans[last + SEQ_END] = spans[last + SEQ] + (next - spans[last + SPAN_LV])
  }
  cg.heads = heads
  cg.next = next
}

/** Throws when the graph's structures disagree with each other. For tests. */
export function checkGraph(cg: CausalGraph): void {
  let expect = 0
  for (const e of cg.entries) {
    if (e.start !== expect || e.end <= e.start) throw new Error(`graph entry gap at ${e.start}`)
    for (const p of e.parents)
      if (p >= e.start) throw new Error(`parent ${p} not before ${e.start}`)
    for (let i = 0; i < e.end - e.start; i++) {
      if (rawToLv(cg, e.agent, e.seq + i) !== e.start + i)
        throw new Error(`agent index disagrees at LV ${e.start + i}`)
    }
    expect = e.end
  }
  if (expect !== cg.next) throw new Error(`graph next ${cg.next} != ${expect}`)
  for (const [agent, spans] of cg.agents) {
    let seq = 0
    if (spans.length === 0 || spans.length % SPAN !== 0)
      throw new Error(`agent ${agent} has ${spans.length} span numbers`)
    for (let s = 0; s < spans.length; s += SPAN) {
      if (spans[s + SEQ] !== seq) throw new Error(`agent ${agent} seq gap at ${seq}`)
      seq = spans[s + SEQ_END]
    }
  }
  for (let i = 1; i < cg.heads.length; i++)
    if (cg.heads[i - 1] >= cg.heads[i]) throw new Error('heads not sorted')
}
