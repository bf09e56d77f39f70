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
import { type CausalGraph, type Frontier, type LV, findEntry } from './causal-graph.ts'

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

const ONLY_A = 0
const ONLY_B = 1
const SHARED = 2
type Flag = typeof ONLY_A | typeof ONLY_B | typeof SHARED

/** Ranges `[start, end)`, ascending. */
export type Ranges = [LV, LV][]

/**
 * The events in `a`'s history and not `b`'s (`aOnly`) and the reverse, as
 * ascending ranges.
 */
export function diff(cg: CausalGraph, a: Frontier, b: Frontier): { aOnly: Ranges; bOnly: Ranges } {
  const queue = new Heap<[LV, Flag]>((x, y) => x[0] > y[0])
  let shared = 0
  const enqueue = (lv: LV, flag: Flag) => {
    queue.push([lv, flag])
    if (flag === SHARED) shared++
  }
  for (const lv of a) enqueue(lv, ONLY_A)
  for (const lv of b) enqueue(lv, ONLY_B)
  const aOnly: Ranges = []
  const bOnly: Ranges = []
  const mark = (flag: Flag, start: LV, end: LV) => {
    if (flag === SHARED) return
    const out = flag === ONLY_A ? aOnly : bOnly
    const last = out[out.length - 1]
    // Ranges are found newest first; extend downwards where they touch.
    if (last !== undefined && last[0] === end) last[0] = start
    else out.push([start, end])
  }

  while (queue.size > shared) {
    let [lv, flag] = queue.pop()!
    if (flag === SHARED) shared--
    const entry = cg.entries[findEntry(cg, lv)]
    // Consume every other queued LV inside this entry.
    for (;;) {
      const top = queue.peek()
      if (top === undefined || top[0] < entry.start) break
      const [lv2, flag2] = queue.pop()!
      if (flag2 === SHARED) shared--
      if (flag2 !== flag) {
        mark(flag, lv2 + 1, lv + 1)
        lv = lv2
        flag = SHARED
      }
    }
    mark(flag, entry.start, lv + 1)
    for (const p of entry.parents) enqueue(p, flag)
  }
  aOnly.reverse()
  bOnly.reverse()
  return { aOnly, bOnly }
}

/**
 * The greatest version `common` that every event of `a` and `b` since it
 * descends from, and the events after it (in either history) as ascending
 * ranges. Replaying those ranges on top of `common` reproduces both versions.
 */
export function findConflicting(
  cg: CausalGraph,
  a: Frontier,
  b: Frontier,
): { common: LV[]; zone: Ranges } {
  interface Point {
    v: readonly LV[]
  }
  const last = (p: Point) => (p.v.length === 0 ? -1 : p.v[p.v.length - 1])
  const queue = new Heap<Point>((x, y) => {
    const lx = last(x)
    const ly = last(y)
    return lx !== ly ? lx > ly : x.v.length > y.v.length
  })
  const zone: Ranges = []
  const visit = (start: LV, end: LV) => {
    const top = zone[zone.length - 1]
    if (top !== undefined && top[0] === end) top[0] = start
    else zone.push([start, end])
  }
  const equal = (x: readonly LV[], y: readonly LV[]) =>
    x.length === y.length && x.every((lv, i) => lv === y[i])

  queue.push({ v: a })
  queue.push({ v: b })
  for (;;) {
    const point = queue.pop()!
    const v = point.v
    while (queue.size > 0 && equal(queue.peek()!.v, v)) queue.pop()
    if (queue.size === 0 || v.length === 0) {
      zone.reverse()
      return { common: v.slice(), zone }
    }
    if (v.length > 1) {
      // A merge point: walk its branches separately.
      for (const lv of v) queue.push({ v: [lv] })
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
      const topLast = last(top)
      if (topLast < entry.start) break
      queue.pop()
      if (topLast + 1 < end) {
        visit(topLast + 1, end)
        end = topLast + 1
      }
      for (let i = 0; i < top.v.length - 1; i++) queue.push({ v: [top.v[i]] })
    }
    visit(entry.start, end)
    queue.push({ v: entry.parents })
  }
}
