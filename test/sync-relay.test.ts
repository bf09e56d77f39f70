/**
 * The relay tree (PROTOCOL.md "Relay tree", shared/relay-tree.ts) on the simulated network:
 * in a steady mesh the eager links settle on a spanning tree and each event reaches each
 * replica about once; a pruned link delivers (announcements, then GRAFT) when the tree is
 * cut; meshes with flaps, partitions and restarts converge over many seeds with pruning at
 * work; a reconnect of a pruned link sends no diff; bad or unexpected PRUNE / GRAFT are
 * refused; links with persist (the server's) keep pushing everything.
 *
 * FUZZ_SEED=n replays one seed; FUZZ_MS=n sets the time budget of the seeded test.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { TextDoc, link, memoryPair } from '../shared/index.ts'
import { MSG, SyncError, WireState, decodeMessage, encodeMessage } from '../shared/protocol.ts'
import { summarizeUpdate } from '../shared/update-summary.ts'
import { Network, type SimDocFactory } from './support/netsim.ts'
import { runCheckedScenario } from './support/netsim-workload.ts'
import { RawPeer, until } from './support/raw-peer.ts'
import { Rng } from './support/rng.ts'

const factory: SimDocFactory = {
  create: (agent) => new TextDoc(agent),
  load: (bytes, agent) => TextDoc.load(bytes, agent),
}
const fixedSeed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : null
const budgetMs = Number(process.env.FUZZ_MS ?? 2500)

/** Counts, per replica, the events each applied update carried and those it brought new. */
function countingFactory(counts: { carried: number; fresh: number }): SimDocFactory {
  const wrap = (doc: TextDoc) => {
    const apply = doc.applyUpdate.bind(doc)
    doc.applyUpdate = (u: Uint8Array, origin?: unknown) => {
      const held = total(doc.version())
      apply(u, origin)
      counts.carried += summarizeUpdate(u)?.events ?? 0
      counts.fresh += total(doc.version()) - held
    }
    return doc
  }
  return {
    create: (agent) => wrap(new TextDoc(agent)),
    load: (bytes, agent) => wrap(TextDoc.load(bytes, agent)),
  }
}

function total(vv: Readonly<Record<string, number>>): number {
  let n = 0
  for (const a in vv) n += vv[a]!
  return n
}

/** Every node types `perNode` characters, one every ~100 ms (virtual time). */
function type(net: Network, perNode: number, rng: Rng): void {
  for (let k = 0; k < perNode; k++) {
    for (const node of net.nodes) {
      const doc = node.doc
      doc.insert(rng.int(0, doc.length), 'abcdefgh'[rng.int(0, 7)]!)
    }
    net.clock.advance(rng.int(50, 150))
  }
}

/** The edges whose two links are both in the tree ('off' counts as eager). */
function eagerEdges(net: Network): number[] {
  const out: number[] = []
  net.edges.forEach((e, i) => {
    if (e.links && e.links.every((l) => l.open && l.tree !== 'lazy')) out.push(i)
  })
  return out
}

function connected(n: number, edges: [number, number][]): boolean {
  const seen = new Set([0])
  for (let k = 0; k < n; k++)
    for (const [a, b] of edges) if (seen.has(a) || seen.has(b)) seen.add(a).add(b)
  return seen.size === n
}

test('steady mesh: the eager links settle on a spanning tree; each event reaches each replica about once', () => {
  const counts = { carried: 0, fresh: 0 }
  const rng = new Rng(fixedSeed ?? 11)
  const net = new Network({ factory: countingFactory(counts), nodes: 5, topology: 'mesh', rng })
  type(net, 60, rng) // warm-up: the prunes happen here
  assert.ok(net.settle(), 'converged after warm-up')
  const eager = eagerEdges(net)
  assert.ok(eager.length < net.edges.length, `some links pruned (${eager.length} of 10 eager)`)
  assert.ok(
    connected(
      5,
      eager.map((i) => [net.edges[i]!.a, net.edges[i]!.b]),
    ),
    'the eager links connect every replica',
  )
  assert.is(eager.length, 4, 'a spanning tree of 5 replicas has 4 links')
  counts.carried = counts.fresh = 0
  type(net, 100, rng)
  assert.ok(net.settle(), 'converged')
  const events = 5 * 100
  // Each event must reach 4 replicas; flooding a mesh would deliver it ~16 times.
  assert.is(counts.fresh, 4 * events)
  assert.ok(
    counts.carried <= 1.15 * counts.fresh,
    `${counts.carried} events carried for ${counts.fresh} new (duplicates under 15%)`,
  )
  assert.is(net.errors.length, 0, net.errors.join('; '))
})

/**
 * A network typed on for a while and settled: its eager edges and its first pruned edge
 * (one with links, -1 when none).
 */
function settled(nodes: number, topology: 'ring' | 'mesh', seed: number, perNode: number) {
  const rng = new Rng(seed)
  const net = new Network({ factory, nodes, topology, rng })
  type(net, perNode, rng)
  assert.ok(net.settle(), 'converged')
  const eager = eagerEdges(net)
  const lazy = net.edges.findIndex((e, i) => !eager.includes(i) && e.links !== null)
  return { rng, net, eager, lazy }
}

test('a pruned link delivers (announcements, then GRAFT) when the tree path is cut for good', () => {
  // A ring of 3 is a triangle: once settled, two links push and one announces.
  const { rng, net, eager, lazy } = settled(3, 'ring', fixedSeed ?? 5, 40)
  assert.is(eager.length, 2, 'a triangle settles on a path')
  const grafts = net.stats.byType?.[MSG.GRAFT] ?? 0
  // Cut one tree link and keep it down: only the pruned link connects its two ends now.
  net.setEdge(eager[0]!, false)
  type(net, 20, rng)
  assert.ok(net.settle(30_000), 'converged without the cut link')
  assert.ok((net.stats.byType?.[MSG.GRAFT] ?? 0) > grafts, 'a GRAFT was sent')
  assert.ok(
    net.edges[lazy]!.links!.every((l) => l.tree === 'eager'),
    'the pruned link is back in the tree',
  )
  const text = net.nodes[0]!.doc.toString()
  assert.ok(net.nodes.every((n) => n.doc.toString() === text))
})

test('a reconnect of a pruned link, while the tree holds, sends no diff', () => {
  const { rng, net, lazy } = settled(5, 'mesh', fixedSeed ?? 3, 60)
  assert.ok(lazy >= 0, 'a pruned link')
  net.setEdge(lazy, false)
  net.setEdge(lazy, true)
  const [la, lb] = net.edges[lazy]!.links!
  type(net, 10, rng)
  const diffs = la.stats.eventMessagesSent + lb.stats.eventMessagesSent
  assert.ok(net.settle(), 'converged')
  assert.is(la.tree, 'lazy')
  assert.is(lb.tree, 'lazy')
  assert.is(diffs, 0, 'no events on the reconnected pruned link')
})

test('meshes and random graphs with flaps, partitions and restarts converge, pruning at work', () => {
  const start = Date.now()
  let seed = fixedSeed ?? Math.floor(Math.random() * 1e9)
  let runs = 0
  let prunes = 0
  let grafts = 0
  do {
    for (const topology of ['mesh', 'random', 'ring'] as const) {
      const nodes = topology === 'random' ? 4 + (seed % 4) : 5
      const res = runCheckedScenario(
        {
          factory,
          nodes,
          topology,
          seed,
          edits: 150,
          flaps: true,
          partitions: true,
          restarts: true,
        },
        'test/sync-relay.test.ts',
      )
      prunes += res.net.stats.byType?.[MSG.PRUNE] ?? 0
      grafts += res.net.stats.byType?.[MSG.GRAFT] ?? 0
      runs++
    }
    seed++
  } while (fixedSeed === null && Date.now() - start < budgetMs)
  assert.ok(runs >= 3)
  assert.ok(prunes > 0, `links were pruned (${prunes} PRUNEs in ${runs} runs)`)
  assert.ok(grafts > 0, `links were grafted (${grafts} GRAFTs in ${runs} runs)`)
})

test('PRUNE and GRAFT: round trips; malformed ones are BAD_MESSAGE; decoder state unchanged', () => {
  const tx = new WireState()
  const rx = new WireState()
  const have = Object.assign(Object.create(null), { alice: 3, bob: 9 })
  for (const msg of [{ type: 'prune' }, { type: 'graft', have }] as const) {
    assert.equal(decodeMessage(encodeMessage(msg, tx), rx), msg)
  }
  const bad: [string, number[]][] = [
    ['prune with a body', [3, MSG.PRUNE, 0]],
    ['graft truncated', [3, MSG.GRAFT]],
    ['graft with a zero increment', [3, MSG.GRAFT, 1, 1, 0]],
    ['graft with an unknown agent ref', [3, MSG.GRAFT, 1, 9, 1]],
    ['graft naming an agent twice', [3, MSG.GRAFT, 2, 1, 1, 1, 2]],
    ['hello with unknown flags', [3, MSG.HELLO, 8, 0, 0, 0, 1, 97]],
    ['hello whose vv declares its id again', [3, MSG.HELLO, 4, 1, 97, 1, 0, 1, 97, 1, 0]],
    ['hello with an empty id', [3, MSG.HELLO, 4, 0, 0, 0]],
  ]
  for (const [what, bytes] of bad) {
    const before = JSON.stringify(rx)
    try {
      decodeMessage(new Uint8Array(bytes), rx)
      assert.unreachable(`${what}: accepted`)
    } catch (e) {
      assert.instance(e, SyncError, what)
      assert.is((e as SyncError).codeName, 'BAD_MESSAGE', `${what}: ${(e as Error).message}`)
    }
    assert.is(JSON.stringify(rx), before, `${what}: decoder state unchanged`)
  }
})

test('have travels as increments over the direction’s previous have, and decodes absolute', () => {
  const tx = new WireState()
  const rx = new WireState()
  const vv = (o: Record<string, number>) => Object.assign(Object.create(null), o)
  const first = encodeMessage({ type: 'ack', have: vv({ alice: 300, bob: 200 }) }, tx)
  const second = encodeMessage({ type: 'ack', have: vv({ alice: 305, bob: 200 }) }, tx)
  assert.equal(decodeMessage(first, rx), { type: 'ack', have: vv({ alice: 300, bob: 200 }) })
  // bob did not move: not named; alice +5 fits one byte where 305 takes two.
  assert.equal(decodeMessage(second, rx), { type: 'ack', have: vv({ alice: 305 }) })
  assert.is(second.length, 6)
})

test('PRUNE or GRAFT on a link without the tree is STATE; links with persist never ask for it', async () => {
  const doc = new TextDoc('hub')
  const [x, y] = memoryPair()
  const errors: string[] = []
  const l = link(doc, x, { persist: async () => {}, onError: (e) => errors.push(e.codeName) })
  const raw = new RawPeer(y)
  raw.hello({})
  await until(() => raw.of('hello').length === 1)
  assert.not.ok(raw.of('hello')[0]!.tree, 'a link with persist does not ask for tree relay')
  assert.is(l.tree, 'off')
  raw.send({ type: 'prune' })
  await until(() => l.closed)
  assert.equal(errors, ['STATE'])

  const [p, q] = memoryPair()
  const l2 = link(new TextDoc('peer'), p, { treeRelay: false })
  const raw2 = new RawPeer(q)
  raw2.hello({}, false, true)
  raw2.send({ type: 'graft', have: {} })
  await until(() => l2.closed)
  assert.is(l2.tree, 'off')
})

test('a PRUNE of a link that is our only one that pushes is refused with a GRAFT', async () => {
  const doc = new TextDoc('solo')
  doc.insert(0, 'x')
  const [x, y] = memoryPair()
  const l = link(doc, x)
  const raw = new RawPeer(y)
  raw.hello({}, false, true)
  await until(() => raw.of('events').length === 1)
  raw.send({ type: 'prune' })
  await until(() => raw.of('graft').length === 1)
  assert.is(l.tree, 'eager')
  assert.ok(!l.closed)
  l.close()
})

test.run()
