/**
 * The order in which to integrate a batch of updates so that the walk pays for each version
 * once per batch rather than once per update.
 *
 * Integrating an event moves the walk's prepare version to the event's parents. In a busy star
 * the authors lag the hub by different amounts, so consecutive updates in the hub's order were
 * made on versions far apart (a 200 ms and a 2 s old one alternating), and each integration
 * crosses that distance. Ordered by their parents' age, the batch's updates visit those
 * versions oldest first, and the walk crosses the spread once. The order respects causality:
 * an update whose parents are in the batch sorts with or after them (ties keep arrival order).
 */

import { type CausalGraph, rawToLv } from './causal-graph.ts'
import type { DecodedUpdate } from './encoding.ts'

interface BatchSpan {
  readonly seq: number
  readonly end: number
  readonly key: number
}

/**
 * Indices of `updates` in the order to integrate them, stable, by the newest local event among
 * their parents (a parent in the batch counts as its update's key, so that an update sorts with
 * or after its parents; an unknown one as infinitely new: such an update waits anyway).
 */
export function cheapOrder(cg: CausalGraph, updates: readonly DecodedUpdate[]): number[] {
  const inBatch = new Map<string, BatchSpan[]>()
  const keyInBatch = (agent: string, seq: number): number => {
    const spans = inBatch.get(agent)
    if (spans !== undefined) {
      for (let i = spans.length - 1; i >= 0; i--) {
        const s = spans[i]!
        if (seq >= s.seq && seq < s.end) return s.key
      }
    }
    return Infinity
  }
  const keys = new Array<number>(updates.length)
  for (let u = 0; u < updates.length; u++) {
    let key = -1
    for (const span of updates[u]!.spans) {
      // The version an event was made on is told by its parents from other agents (the hub's
      // merge event its author had last heard); its author's own previous event is recent in
      // any case, whatever the author's lag. Only without others does it count.
      let others = -1
      let own = -1
      for (const [agent, seq] of span.parents) {
        const lv = rawToLv(cg, agent, seq)
        if (lv < 0) key = Math.max(key, keyInBatch(agent, seq))
        else if (agent !== span.agent) others = Math.max(others, lv)
        else own = Math.max(own, lv)
      }
      key = Math.max(key, others >= 0 ? others : own)
      let spans = inBatch.get(span.agent)
      if (spans === undefined) inBatch.set(span.agent, (spans = []))
      spans.push({ seq: span.seq, end: span.seq + span.len, key })
    }
    keys[u] = key
  }
  const order = Array.from(keys, (_, i) => i)
  return order.sort((a, b) => keys[a]! - keys[b]! || a - b)
}
