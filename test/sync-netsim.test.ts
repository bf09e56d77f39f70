/**
 * Seeded network simulation of TextDoc replicas linked by `link`: star, chain, ring,
 * mesh and random graphs, with per-link latency and jitter, link flaps, partitions
 * that heal and restarts from save(). When the network goes quiet every replica has
 * the same text, every inserted marker is present exactly once and none is torn.
 *
 * FUZZ_SEED=n replays one seed (all topologies); FUZZ_MS=n sets the time budget
 * (default ~3 s: one pass over the topologies, more seeds while time remains).
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { TextDoc } from '../shared/index.ts'
import { VirtualClock, topologyEdges, type SimDocFactory, type Topology } from './support/netsim.ts'
import { checkScenario, runCheckedScenario, runScenario } from './support/netsim-workload.ts'
import { Rng } from './support/rng.ts'
import { MSG } from '../shared/protocol.ts'

const factory: SimDocFactory = {
  create: (agent) => new TextDoc(agent),
  load: (bytes, agent) => TextDoc.load(bytes, agent),
}

const TOPOLOGIES: Topology[] = ['star', 'chain', 'ring', 'mesh', 'random']
const fixedSeed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : null
const budgetMs = Number(process.env.FUZZ_MS ?? 3000)

test('virtual clock fires timers in time order and ties in creation order', () => {
  const c = new VirtualClock()
  const out: string[] = []
  c.setTimeout(() => out.push('b'), 20)
  c.setTimeout(() => out.push('a'), 10)
  c.setTimeout(() => out.push('c'), 20)
  const h = c.setTimeout(() => out.push('x'), 15)
  c.clearTimeout(h)
  c.setTimeout(() => c.setTimeout(() => out.push('d'), 0), 20)
  c.advance(25)
  assert.equal(out, ['a', 'b', 'c', 'd'])
  assert.is(c.now(), 25)
})

test('topologies have the expected shape and are connected', () => {
  const rng = new Rng(1)
  assert.is(topologyEdges('star', 5, rng).length, 4)
  assert.is(topologyEdges('chain', 5, rng).length, 4)
  assert.is(topologyEdges('ring', 5, rng).length, 5)
  assert.is(topologyEdges('mesh', 5, rng).length, 10)
  for (let s = 0; s < 20; s++) {
    const n = 2 + (s % 6)
    const edges = topologyEdges('random', n, new Rng(s))
    const seen = new Set([0])
    for (let k = 0; k < n; k++)
      for (const [a, b] of edges) if (seen.has(a) || seen.has(b)) seen.add(a).add(b)
    assert.is(seen.size, n, `random graph ${s} connected`)
  }
})

test('simulated replicas converge in every topology through flaps, partitions and restarts', () => {
  const start = Date.now()
  const coverage: Record<
    string,
    { seeds: number; events: number; flaps: number; partitions: number; restarts: number }
  > = {}
  let seed = fixedSeed ?? Math.floor(Math.random() * 1e9)
  let rounds = 0
  do {
    for (const topology of TOPOLOGIES) {
      const nodes = topology === 'random' ? 3 + (seed % 5) : 5
      const res = runCheckedScenario(
        {
          factory,
          nodes,
          topology,
          seed,
          edits: 120,
          flaps: true,
          partitions: true,
          restarts: true,
        },
        'test/sync-netsim.test.ts',
      )
      const c = (coverage[topology] ??= {
        seeds: 0,
        events: 0,
        flaps: 0,
        partitions: 0,
        restarts: 0,
      })
      c.seeds++
      c.events += res.events
      c.flaps += res.flaps
      c.partitions += res.partitions
      c.restarts += res.restarts
    }
    rounds++
    seed++
  } while (fixedSeed === null && Date.now() - start < budgetMs)
  if (process.env.NETSIM_REPORT) console.log(JSON.stringify(coverage))
  assert.ok(rounds >= 1)
})

test('a quiet network goes silent: past the last announcements, idle links send nothing', () => {
  const res = runScenario({ factory, nodes: 4, topology: 'ring', seed: fixedSeed ?? 7, edits: 60 })
  checkScenario(res)
  // A pruned link announces what changed at most every lazyDelayMs (3 s): once more at most.
  const acks = () => res.net.stats.byType?.[MSG.ACK] ?? 0
  const [before, acksBefore] = [res.net.stats.messages, acks()]
  res.net.clock.advance(5_000)
  const trailing = res.net.stats.messages - before
  assert.is(acks() - acksBefore, trailing, 'only announcements trail')
  assert.ok(trailing <= 2 * res.net.edges.length, `${trailing} trailing announcements`)
  const after = res.net.stats.messages
  res.net.clock.advance(10_000)
  assert.is(res.net.stats.messages, after, 'idle links are silent')
})

test.run()
