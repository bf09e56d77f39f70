/**
 * The causal graph and its walks against naive ancestor sets: random graphs of
 * several agents with runs, merges and stale parents; `diff`, `findConflicting`
 * and `dominators` checked on random frontiers of each.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import {
  type CausalGraph,
  type LV,
  addEvents,
  checkGraph,
  createGraph,
  nextSeq,
} from '../shared/causal-graph.ts'
import { diff, dominators, findConflicting } from '../shared/graph-diff.ts'
import { Rng } from './support/rng.ts'

/** A random graph and, per event, the set of its ancestors (itself included). */
function randomGraph(rng: Rng, events: number): { cg: CausalGraph; below: Set<LV>[] } {
  const cg = createGraph()
  const below: Set<LV>[] = []
  const agents = ['a', 'b', 'c', 'd', 'e'].slice(0, rng.int(1, 5))
  while (cg.next < events) {
    const agent = agents[rng.int(0, agents.length - 1)]!
    // Parents: a random subset of recent events, reduced to those not below another.
    const pick = new Set<LV>()
    const k = cg.next === 0 ? 0 : rng.int(1, 3)
    for (let i = 0; i < k; i++) pick.add(Math.max(0, cg.next - 1 - rng.int(0, 12)))
    const parents = [...pick].filter((p) => ![...pick].some((q) => q !== p && below[q]!.has(p)))
    parents.sort((x, y) => x - y)
    const len = rng.int(1, 4)
    const start = addEvents(cg, agent, nextSeq(cg, agent), len, parents)
    for (let lv = start; lv < start + len; lv++) {
      const set = new Set<LV>([lv])
      for (const p of lv === start ? parents : [lv - 1]) for (const x of below[p]!) set.add(x)
      below.push(set)
    }
  }
  checkGraph(cg)
  return { cg, below }
}

const history = (below: Set<LV>[], f: readonly LV[]) => {
  const s = new Set<LV>()
  for (const lv of f) for (const x of below[lv]!) s.add(x)
  return s
}
const expand = (ranges: [LV, LV][]) =>
  ranges.flatMap(([s, e]) => [...Array(e - s).keys()].map((i) => s + i))
const randomFrontier = (rng: Rng, cg: CausalGraph, below: Set<LV>[]) => {
  const lvs = [...Array(rng.int(1, 4)).keys()].map(() => rng.int(0, cg.next - 1))
  return dominatorsNaive(below, lvs)
}
function dominatorsNaive(below: Set<LV>[], lvs: LV[]): LV[] {
  const u = [...new Set(lvs)]
  return u.filter((lv) => !u.some((o) => o !== lv && below[o]!.has(lv))).sort((x, y) => x - y)
}

test('dominators: the inputs no other input descends from, ascending, duplicates once', () => {
  for (let seed = 1; seed <= 60; seed++) {
    const rng = new Rng(seed)
    const { cg, below } = randomGraph(rng, rng.int(5, 120))
    for (let i = 0; i < 40; i++) {
      const lvs = [...Array(rng.int(1, 6)).keys()].map(() => rng.int(0, cg.next - 1))
      assert.equal(dominators(cg, lvs), dominatorsNaive(below, lvs), `seed ${seed} ${lvs}`)
    }
  }
})

/** Calls `check` with random frontiers `a` and `b` of random graphs: 60 graphs, 30 pairs each. */
function forRandomPairs(
  check: (cg: CausalGraph, below: Set<LV>[], a: LV[], b: LV[], seed: number) => void,
): void {
  for (let seed = 1; seed <= 60; seed++) {
    const rng = new Rng(seed)
    const { cg, below } = randomGraph(rng, rng.int(5, 120))
    for (let i = 0; i < 30; i++)
      check(cg, below, randomFrontier(rng, cg, below), randomFrontier(rng, cg, below), seed)
  }
}

test('diff: exactly the events one version has and the other lacks', () => {
  forRandomPairs((cg, below, a, b) => {
    const ha = history(below, a)
    const hb = history(below, b)
    const { aOnly, bOnly } = diff(cg, a, b)
    assert.equal(
      expand(aOnly),
      [...ha].filter((x) => !hb.has(x)).sort((x, y) => x - y),
    )
    assert.equal(
      expand(bOnly),
      [...hb].filter((x) => !ha.has(x)).sort((x, y) => x - y),
    )
  })
})

test('findConflicting: the zone since the common version covers both sides; a budget only cuts it short', () => {
  forRandomPairs((cg, below, a, b, seed) => {
    const { common, zone } = findConflicting(cg, a, b)!
    const hc = history(below, common)
    const union = new Set([...history(below, a), ...history(below, b)])
    // Every event after the common version, in either history, is in the zone...
    const after = [...union].filter((x) => !hc.has(x)).sort((x, y) => x - y)
    const inZone = new Set(expand(zone))
    for (const x of after) assert.ok(inZone.has(x), `seed ${seed}: ${x} missing from zone`)
    // ...and the common version is in both histories.
    for (const c of common) assert.ok(union.has(c), `seed ${seed}: ${c} in neither history`)
    const hca = history(below, a)
    const hcb = history(below, b)
    for (const x of hc) assert.ok(hca.has(x) && hcb.has(x), `seed ${seed}: ${x} not common`)
    // A budget only ever cuts the search short; what it returns is the same.
    const capped = findConflicting(cg, a, b, 0)
    if (capped !== null) assert.equal(capped, { common, zone })
  })
})

test('heads: the frontier of every event; an entry made on the heads keeps them as its parents', () => {
  const rng = new Rng(7)
  for (let round = 0; round < 50; round++) {
    const { cg, below } = randomGraph(rng, 60)
    // The heads are the events no other event descends from.
    const heads = [...below.keys()].filter((p) => !below.some((set, q) => q !== p && set.has(p)))
    assert.equal(cg.heads, heads)
    // addEvents moves the heads in place: an entry on them must not see that.
    const local = addEvents(cg, 'z', nextSeq(cg, 'z'), 1, cg.heads)
    const entry = cg.entries[cg.entries.length - 1]!
    const parents = entry.parents.slice()
    assert.equal(parents, heads)
    addEvents(cg, 'y', nextSeq(cg, 'y'), 2, [heads[0]!])
    addEvents(cg, 'x', nextSeq(cg, 'x'), 1, [local])
    assert.equal(entry.parents, parents)
    assert.equal(cg.heads, [local + 2, local + 3])
    checkGraph(cg)
  }
})

test.run()
