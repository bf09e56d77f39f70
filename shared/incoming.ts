/**
 * Incoming events checked against what a replica holds: an update's ops split
 * over its spans, a parent set reduced to a frontier, and events we already
 * have compared with ours (a different copy of a known event is refused,
 * RELIABILITY D3). Free functions over the graph and op log; nothing here
 * changes state.
 */
import {
  type CausalGraph,
  type LV,
  frontierEquals,
  parentsOf,
  rawToLv,
  rawToLvSpan,
} from './causal-graph.ts'
import { dominators } from './graph-diff.ts'
import { type OpLog, type OpRun, opsIn } from './oplog.ts'
import type { DecodedUpdate, OpSpan } from './encoding.ts'
import { type IncomingSpan, sameOp, sliceOp } from './pending.ts'
import { DecodeError } from './varint.ts'

/** Sorted, deduplicated, and without parents that are ancestors of other parents. */
export function minimalFrontier(cg: CausalGraph, lvs: LV[]): LV[] {
  return lvs.length <= 1 ? lvs : dominators(cg, lvs)
}

/** Rejects an incoming span whose first `known` events differ from ours (RELIABILITY D3). */
export function checkKnown(cg: CausalGraph, log: OpLog, span: IncomingSpan, known: number): void {
  const conflict = () =>
    new DecodeError(`event (${span.agent}, ${span.seq}) conflicts with the one we hold`)
  const first = rawToLv(cg, span.agent, span.seq)
  const theirs = span.parents.map(([a, s]) => rawToLv(cg, a, s))
  const ours = parentsOf(cg, first)
  if (
    !frontierEquals(
      minimalFrontier(
        cg,
        theirs.filter((p) => p >= 0),
      ),
      ours,
    ) ||
    theirs.includes(-1)
  )
    throw conflict()
  let seq = span.seq
  let opIdx = 0
  let opOff = 0
  let remaining = known
  while (remaining > 0) {
    const [lv, contiguous] = rawToLvSpan(cg, span.agent, seq)!
    const n = Math.min(remaining, contiguous)
    for (const mine of opsIn(log, lv, lv + n)) {
      let m = 0
      const len = mine.end - mine.start
      while (m < len) {
        const op = span.ops[opIdx]
        const take = Math.min(len - m, op.len - opOff)
        const a = sliceOp(toOpSpan(mine), m, take)
        const b = sliceOp(op, opOff, take)
        if (!sameOp(a, b)) throw conflict()
        m += take
        opOff += take
        if (opOff === op.len) {
          opIdx++
          opOff = 0
        }
      }
    }
    seq += n
    remaining -= n
  }
}

/** Splits an update's ops over its spans. */
export function attachOps(update: DecodedUpdate): IncomingSpan[] {
  const out: IncomingSpan[] = []
  let opIdx = 0
  let opOff = 0
  for (const span of update.spans) {
    const ops: OpSpan[] = []
    let need = span.len
    while (need > 0) {
      const op = update.ops[opIdx]
      const take = Math.min(need, op.len - opOff)
      ops.push(opOff === 0 && take === op.len ? op : sliceOp(op, opOff, take))
      need -= take
      opOff += take
      if (opOff === op.len) {
        opIdx++
        opOff = 0
      }
    }
    out.push({ agent: span.agent, seq: span.seq, len: span.len, parents: span.parents, ops })
  }
  return out
}

export function toOpSpan(r: OpRun): OpSpan {
  return { kind: r.kind, len: r.end - r.start, pos: r.pos, fwd: r.fwd, content: r.content }
}

/**
 * An update's spans (in the sender's order, a topological one) reordered so that spans made on
 * nearby versions come together: stably by their newest parent, as the LV it has here (or
 * would have, for a parent in the same update, were the update added in its order). A span
 * thus stays after its parents and after its agent's earlier span, and a branch of the update
 * whose parents are all its own stays in the sender's order. The walker moves its prepare
 * version from one span's parents to the next's; a hub's batch interleaves clients whose
 * versions lag by up to a second, and in the sender's order each move retreated and advanced
 * that second of edits (7 times as many events on load clients' recorded streams).
 */
export function byNewestParent(cg: CausalGraph, spans: IncomingSpan[]): IncomingSpan[] {
  const n = spans.length
  if (n < 3) return spans
  const key = new Float64Array(n)
  /** Per span, the LV its first event would have in the sender's order. */
  const at = new Float64Array(n)
  /** The update's spans by agent, made once an event is not here (in a hub's batch, rare). */
  let byAgent: Map<string, number[]> | null = null
  /** The LV event (agent, seq) would have if a span before `i` holds it, else -1. */
  const inUpdate = (agent: string, seq: number, i: number): number => {
    byAgent ??= spansByAgent(spans)
    const list = byAgent.get(agent)
    if (list !== undefined) {
      for (let j = list.length - 1; j >= 0; j--) {
        const t = spans[list[j]]
        if (list[j] < i && t.seq <= seq && seq < t.seq + t.len) return at[list[j]] + (seq - t.seq)
      }
    }
    return -1 // not here yet: the span waits, wherever it goes
  }
  let sorted = true
  let next = cg.next
  for (let i = 0; i < n; i++) {
    const s = spans[i]
    at[i] = next
    next += s.len
    let k = -1
    for (const [a, seq] of s.parents) {
      const lv = rawToLv(cg, a, seq)
      k = Math.max(k, lv >= 0 ? lv : inUpdate(a, seq, i))
    }
    // After its agent's previous event when that is in the update too (an ancestor, named or not).
    if (s.seq > 0 && rawToLv(cg, s.agent, s.seq - 1) < 0)
      k = Math.max(k, inUpdate(s.agent, s.seq - 1, i))
    key[i] = k
    if (i > 0 && k < key[i - 1]) sorted = false
  }
  if (sorted) return spans
  const order = Array.from({ length: n }, (_, i) => i)
  order.sort((x, y) => key[x] - key[y] || x - y)
  return order.map((i) => spans[i])
}

function spansByAgent(spans: IncomingSpan[]): Map<string, number[]> {
  const out = new Map<string, number[]>()
  for (let i = 0; i < spans.length; i++) {
    const list = out.get(spans[i].agent)
    if (list === undefined) out.set(spans[i].agent, [i])
    else list.push(i)
  }
  return out
}
