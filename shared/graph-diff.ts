/**
 * Walks over the causal graph: `diff` (which events one version has that
 * another lacks) and `findConflicting` (the common version of two versions and
 * every event after it, the "conflict zone" the walker replays).
 *
 * Both walk backwards from the versions' newest events with a max-heap of LVs,
 * consuming whole graph entries at a time, and stop as soon as the walks meet:
 * the cost is proportional to the events since the versions diverged, not to
 * the history's length.
 */
import {
  type CausalGraph,
  type Frontier,
  type LV,
  findEntry,
  frontierEquals,
} from './causal-graph.ts'
import { anchorShape } from './shape-anchors.ts'

/** A binary max-heap with a caller-supplied "a before b" comparison. */
class Heap<T> {
  private readonly items: T[] = []
  constructor(private readonly before: (a: T, b: T) => boolean) {}
  get size(): number {
    return this.items.length
  }
  peek(): T | undefined {
    return this.items[0]
  }
  push(item: T): void {
    const items = this.items
    let i = items.push(item) - 1
    while (i > 0) {
      const up = (i - 1) >> 1
      if (!this.before(items[i], items[up])) break
      ;[items[i], items[up]] = [items[up], items[i]]
      i = up
    }
  }
  pop(): T | undefined {
    const items = this.items
    const top = items[0]
    const last = items.pop()
    if (items.length > 0 && last !== undefined) {
      items[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let best = i
        if (l < items.length && this.before(items[l], items[best])) best = l
        if (r < items.length && this.before(items[r], items[best])) best = r
        if (best === i) break
        ;[items[i], items[best]] = [items[best], items[i]]
        i = best
      }
    }
    return top
  }
}
anchorShape(() => new Heap<readonly LV[]>(() => false))

const ONLY_A = 0
const ONLY_B = 1
const SHARED = 2
type Flag = typeof ONLY_A | typeof ONLY_B | typeof SHARED

/** Ranges `[start, end)`, ascending. */
export type Ranges = [LV, LV][]

/** A binary max-heap of numbers (each an LV * 4 + flag). */
class NumHeap {
  readonly items: number[] = []
  push(x: number): void {
    const items = this.items
    let i = items.push(x) - 1
    while (i > 0) {
      const up = (i - 1) >> 1
      if (items[up] >= x) break
      items[i] = items[up]
      i = up
    }
    items[i] = x
  }
  pop(): number {
    const items = this.items
    const top = items[0]
    const last = items.pop()!
    const n = items.length
    if (n > 0) {
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        if (l >= n) break
        const r = l + 1
        const c = r < n && items[r] > items[l] ? r : l
        if (items[c] <= last) break
        items[i] = items[c]
        i = c
      }
      items[i] = last
    }
    return top
  }
}
anchorShape(() => new NumHeap())

/**
 * Queue length from which a walk stops queueing an LV twice: with wide frontiers every
 * child names the same parents, and the queue would hold each of them once per child.
 */
const DEDUPE_FROM = 16

function mark(aOnly: Ranges, bOnly: Ranges, flag: Flag, start: LV, end: LV): void {
  if (flag === SHARED || start >= end) return
  const out = flag === ONLY_A ? aOnly : bOnly
  const last = out[out.length - 1]
  // Ranges are found newest first; extend downwards where they touch.
  if (last !== undefined && last[0] === end) last[0] = start
  else out.push([start, end])
}

/**
 * The events in `a`'s history and not `b`'s (`aOnly`) and the reverse, as
 * ascending ranges.
 */
export function diff(cg: CausalGraph, a: Frontier, b: Frontier): { aOnly: Ranges; bOnly: Ranges } {
  // Fast path: one version is the other's ancestor inside one run (typing on after a merge).
  if (a.length === 1 && b.length === 1) {
    const [x] = a
    const [y] = b
    if (x === y) return { aOnly: [], bOnly: [] }
    const e = cg.entries[findEntry(cg, Math.max(x, y))]
    if (Math.min(x, y) >= e.start) {
      return x > y ? { aOnly: [[y + 1, x + 1]], bOnly: [] } : { aOnly: [], bOnly: [[x + 1, y + 1]] }
    }
  }
  const queue = new NumHeap()
  const items = queue.items
  let shared = 0
  for (const lv of a) queue.push(lv * 4 + ONLY_A)
  for (const lv of b) queue.push(lv * 4 + ONLY_B)
  const aOnly: Ranges = []
  const bOnly: Ranges = []
  let queued: Set<number> | undefined

  while (items.length > shared) {
    const x = queue.pop()
    let flag = (x % 4) as Flag
    let lv = (x - flag) / 4
    if (flag === SHARED) shared--
    const entry = cg.entries[findEntry(cg, lv)]
    // Consume every other queued LV inside this entry.
    while (items.length > 0 && items[0] >= entry.start * 4) {
      const y = queue.pop()
      const flag2 = (y % 4) as Flag
      const lv2 = (y - flag2) / 4
      if (flag2 === SHARED) shared--
      if (flag2 !== flag) {
        mark(aOnly, bOnly, flag, lv2 + 1, lv + 1)
        lv = lv2
        flag = SHARED
      }
    }
    mark(aOnly, bOnly, flag, entry.start, lv + 1)
    for (const p of entry.parents) {
      // Many children name the same parents when frontiers are wide: queue each once per flag
      // (LVs pop newest first, so one never comes back after it popped).
      const x = p * 4 + flag
      if (items.length >= DEDUPE_FROM) {
        if ((queued ??= new Set()).has(x)) continue
        queued.add(x)
      }
      queue.push(x)
      if (flag === SHARED) shared++
    }
  }
  aOnly.reverse()
  bOnly.reverse()
  return { aOnly, bOnly }
}

/**
 * The versions of `lvs` that are not ancestors of others among them (the
 * frontier of their union), ascending. One walk back from the newest to the
 * oldest of them, consuming whole entries: cost is proportional to the events
 * between them, not to the number of pairs.
 */
export function dominators(cg: CausalGraph, lvs: readonly LV[]): LV[] {
  if (lvs.length <= 1) return lvs.slice()
  const queue = new NumHeap()
  const items = queue.items
  // Each queued number is LV * 2 + 1 for an input, LV * 2 for an ancestor reached by the walk;
  // an input pops before an ancestor at the same LV, which then marks it dominated.
  let inputs = 0
  let oldest = Infinity
  for (const lv of lvs) {
    queue.push(lv * 2 + 1)
    inputs++
    if (lv < oldest) oldest = lv
  }
  const out: LV[] = []
  /** Ancestors queued so far: each once, however many children name it. */
  let queuedAncestors: Set<LV> | undefined
  while (inputs > 0) {
    const x = queue.pop()
    const isInput = x % 2 === 1
    const lv = (x - (x % 2)) / 2
    if (isInput) inputs--
    let reached = !isInput
    while (items.length > 0 && items[0] >= lv * 2) {
      if (queue.pop() % 2 === 1) inputs--
      else reached = true
    }
    if (isInput && !reached) out.push(lv)
    if (inputs === 0) break
    // Everything below `lv` in its entry is its ancestor: dominated or merely reached.
    const entry = cg.entries[findEntry(cg, lv)]
    while (items.length > 0 && items[0] >= entry.start * 2) {
      if (queue.pop() % 2 === 1) inputs--
    }
    if (inputs === 0) break
    for (const p of entry.parents) {
      if (p < oldest) continue
      if (items.length >= DEDUPE_FROM) {
        if ((queuedAncestors ??= new Set()).has(p)) continue
        queuedAncestors.add(p)
      }
      queue.push(p * 2)
    }
  }
  return out.reverse()
}

const lastOf = (v: readonly LV[]): LV => (v.length === 0 ? -1 : v[v.length - 1])

/** Walk order of versions: newest last event first, then the wider one (a merge point). */
function pointBefore(x: readonly LV[], y: readonly LV[]): boolean {
  const lx = lastOf(x)
  const ly = lastOf(y)
  return lx !== ly ? lx > ly : x.length > y.length
}

/**
 * The greatest version `common` that every event of `a` and `b` since it
 * descends from, and the events after it (in either history) as ascending
 * ranges. Replaying those ranges on top of `common` reproduces both versions.
 * Returns null once the zone grows past `budget` events.
 */
export function findConflicting(
  cg: CausalGraph,
  a: Frontier,
  b: Frontier,
  budget = Infinity,
): { common: LV[]; zone: Ranges } | null {
  const queue = new Heap<readonly LV[]>(pointBefore)
  const zone: Ranges = []
  let visited = 0
  const visit = (start: LV, end: LV) => {
    visited += end - start
    const top = zone[zone.length - 1]
    if (top !== undefined && top[0] === end) top[0] = start
    else zone.push([start, end])
  }

  queue.push(a)
  queue.push(b)
  for (;;) {
    const v = queue.pop()!
    while (queue.size > 0 && frontierEquals(queue.peek()!, v)) queue.pop()
    if (queue.size === 0 || v.length === 0) {
      zone.reverse()
      return { common: v.slice(), zone }
    }
    if (v.length > 1) {
      // A merge point: walk its branches separately.
      for (const lv of v) queue.push([lv])
      continue
    }
    const lv = v[0]
    const entry = cg.entries[findEntry(cg, lv)]
    let end = lv + 1
    for (;;) {
      if (queue.size === 0) {
        // Everything else met inside this entry: the common version is here.
        zone.reverse()
        return { common: [end - 1], zone }
      }
      const top = queue.peek()!
      const topLast = lastOf(top)
      if (topLast < entry.start) break
      queue.pop()
      if (topLast + 1 < end) {
        visit(topLast + 1, end)
        end = topLast + 1
      }
      for (let i = 0; i < top.length - 1; i++) queue.push([top[i]])
    }
    visit(entry.start, end)
    if (visited > budget) return null
    queue.push(entry.parents)
  }
}
