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
