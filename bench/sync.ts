/**
 * Sync efficiency on the simulated network (test/support/netsim.ts), virtual time:
 *   1. steady state: 5 replicas typing single characters in a ring and in a mesh,
 *      with link flaps: bytes and messages on the wire per inserted character;
 *   2. partition heal: two sides apart while 10,000 events are made, then healed:
 *      bytes that travel at the heal vs the size of the missing events.
 * A naive flooding protocol on Yjs (forward every new update to every neighbour,
 * state-vector resync on reconnect) runs the same load for comparison.
 *
 * Run: npm run bench:sync  (BENCH_CHARS, BENCH_RATE, BENCH_BATCH_MS, BENCH_MAX_BATCH_MS
 * to vary the load and the batch window)
 */

import * as Y from 'yjs'
import { TextDoc } from '../shared/index.ts'
import { Network, type SimDocFactory, type Topology } from '../test/support/netsim.ts'
import { Rng } from '../test/support/rng.ts'
import { summarizeUpdate } from '../shared/update-summary.ts'

const factory: SimDocFactory = {
  create: (agent) => new TextDoc(agent),
  load: (bytes, agent) => TextDoc.load(bytes, agent),
}

const CHARS = Number(process.env.BENCH_CHARS ?? 2000)
/** Characters per second per replica while typing. */
const RATE = Number(process.env.BENCH_RATE ?? 8)
const BATCH_MS = Number(process.env.BENCH_BATCH_MS ?? 20)
/** Upper bound of the adaptive batch window (the longest an event waits). */
const MAX_BATCH_MS = Number(process.env.BENCH_MAX_BATCH_MS ?? 500)

interface Load {
  topology: Topology
  nodes: number
  chars: number
  rate: number
  flaps: boolean
  seed: number
}

/** A random agent id like TextDoc's own (12 chars), so names cost what they cost in real use. */
function agentName(rng: Rng): string {
  let s = ''
  for (let i = 0; i < 12; i++) s += 'abcdefghijklmnopqrstuvwxyz0123456789'[rng.int(0, 35)]
  return s
}

/** Typing schedule: per replica, a char every ~1000/rate ms at its own cursor; flap events. */
function drive(
  load: Load,
  clock: {
    now(): number
    setTimeout(fn: () => void, ms: number): unknown
    advance(ms: number): void
  },
  type: (node: number, rng: Rng) => void,
  flap: (edge: number, up: boolean) => void,
  edges: number,
  onStep: () => void = () => {},
): void {
  const rng = new Rng(load.seed + 1)
  let typed = 0
  const interval = 1000 / load.rate
  for (let n = 0; n < load.nodes; n++) {
    const tick = () => {
      if (typed >= load.chars) return
      typed++
      type(n, rng)
      clock.setTimeout(tick, interval * (0.5 + rng.float()))
    }
    clock.setTimeout(tick, rng.float() * interval)
  }
  if (load.flaps) {
    const flapTick = () => {
      if (typed >= load.chars) return
      const e = rng.int(0, edges - 1)
      flap(e, false)
      clock.setTimeout(() => flap(e, true), rng.int(200, 3000))
      clock.setTimeout(flapTick, rng.int(500, 2000))
    }
    clock.setTimeout(flapTick, 1000)
  }
  while (typed < load.chars) {
    clock.advance(50)
    onStep()
  }
}

/** The agent id of a simulated replica (a TextDoc). */
function agentOf(doc: unknown): string {
  return String((doc as TextDoc).agent)
}

interface PolyphonyRun {
  bytes: number
  messages: number
  ms: number
  /** Events received per inserted event (each must reach nodes - 1 replicas). */
  received: number
  /** Event deliveries to other replicas, insert to integration, in virtual ms (50 ms steps). */
  latency: { mean: number; p99: number }
}

function benchPolyphony(load: Load): PolyphonyRun {
  const rng = new Rng(load.seed)
  const t0 = performance.now()
  let received = 0
  const counting: SimDocFactory = {
    create: (agent) => countReceived(factory.create(agent)),
    load: (bytes, agent) => countReceived(factory.load(bytes, agent)),
  }
  function countReceived<D extends { applyUpdate(u: Uint8Array, o?: unknown): void }>(doc: D): D {
    const apply = doc.applyUpdate.bind(doc)
    doc.applyUpdate = (u, o) => {
      received += summarizeUpdate(u)?.events ?? 0
      apply(u, o)
    }
    return doc
  }
  const net = new Network({
    factory: counting,
    agentName: () => agentName(rng),
    nodes: load.nodes,
    topology: load.topology,
    rng,
    link: { batchDelayMs: BATCH_MS, maxBatchDelayMs: MAX_BATCH_MS },
  })
  const cursors = new Array(load.nodes).fill(0)
  // Delivery latency: when each event was made, and what each replica held at the last step.
  const born = new Map<string, number[]>()
  const seen: Record<string, number>[] = net.nodes.map(() => ({}))
  const latencies: number[] = []
  const sample = () => {
    net.nodes.forEach((node, i) => {
      const vv = node.doc.version()
      for (const a in vv) {
        const times = born.get(a)
        for (let q = seen[i]![a] ?? 0; q < vv[a]!; q++) {
          const t = times?.[q]
          if (t !== undefined && agentOf(node.doc) !== a) latencies.push(net.clock.now() - t)
        }
        seen[i]![a] = vv[a]!
      }
    })
  }
  drive(
    load,
    net.clock,
    (n, r) => {
      const doc = net.nodes[n]!.doc
      if (r.chance(0.03)) cursors[n] = r.int(0, doc.length)
      cursors[n] = Math.min(cursors[n], doc.length)
      doc.insert(cursors[n]++, 'abcdefghijklmnopqrstuvwxyz '[r.int(0, 26)]!)
      const times = born.get(agentOf(doc)) ?? []
      born.set(agentOf(doc), times)
      times.push(net.clock.now())
    },
    (e, up) => net.setEdge(e, up),
    net.edges.length,
    sample,
  )
  net.healAll()
  for (let t = 0; t < 120_000 && !net.converged(); t += 50) {
    net.clock.advance(50)
    sample()
  }
  if (!net.settle()) throw new Error(`polyphony ${load.topology} did not converge`)
  const text = net.nodes[0]!.doc.toString()
  if (text.length !== load.chars || net.nodes.some((n) => n.doc.toString() !== text)) {
    throw new Error('polyphony: replicas differ')
  }
  latencies.sort((a, b) => a - b)
  const mean = latencies.reduce((a, b) => a + b, 0) / latencies.length
  const p99 = latencies[Math.floor(0.99 * (latencies.length - 1))]!
  return {
    bytes: net.stats.bytes,
    messages: net.stats.messages,
    ms: performance.now() - t0,
    received: received / load.chars,
    latency: { mean, p99 },
  }
}

/**
 * Naive flooding on Yjs over the same simulated links: every new update goes to every
 * neighbour but its sender; a link coming up exchanges state vectors and diffs.
 */
function benchYjsFlood(load: Load): { bytes: number; messages: number } {
  const rng = new Rng(load.seed)
  // Same topology and link latencies as the Polyphony run (same rng draws).
  const net = new Network({
    factory,
    nodes: load.nodes,
    topology: load.topology,
    rng,
    agentName: () => agentName(rng),
  })
  for (const e of net.edges) net.setEdge(net.edges.indexOf(e), false) // we only reuse its clock/edges
  const clock = net.clock
  const docs = Array.from({ length: load.nodes }, () => new Y.Doc())
  const stats = { bytes: 0, messages: 0 }
  const up = net.edges.map(() => true)
  const epoch = net.edges.map(() => 0)
  const lastAt = net.edges.map(() => [0, 0])
  const send = (ei: number, from: number, msg: Uint8Array, deliver: (m: Uint8Array) => void) => {
    if (!up[ei]) return
    stats.bytes += msg.length + 1 // + a message-type byte, as y-protocols has
    stats.messages++
    const e = net.edges[ei]!
    const dir = e.a === from ? 0 : 1
    const at = Math.max(lastAt[ei]![dir]!, clock.now() + e.latency + rng.float() * e.jitter)
    lastAt[ei]![dir] = at
    const ep = epoch[ei]
    clock.setTimeout(() => {
      if (up[ei] && epoch[ei] === ep) deliver(msg)
    }, at - clock.now())
  }
  const neighbours = (n: number) =>
    net.edges.map((e, i) => [e, i] as const).filter(([e]) => e.a === n || e.b === n)
  docs.forEach((doc, n) => {
    doc.on('update', (update: Uint8Array, origin: unknown) => {
      for (const [e, i] of neighbours(n)) {
        const other = e.a === n ? e.b : e.a
        if (origin === other) continue
        send(i, n, update, (m) => Y.applyUpdate(docs[other]!, m, n))
      }
    })
  })
  const resync = (i: number) => {
    const e = net.edges[i]!
    for (const [x, y] of [
      [e.a, e.b],
      [e.b, e.a],
    ] as const) {
      const sv = Y.encodeStateVector(docs[x]!)
      send(i, x, sv, (m) => {
        const diff = Y.encodeStateAsUpdate(docs[y]!, m)
        send(i, y, diff, (d) => Y.applyUpdate(docs[x]!, d, y))
      })
    }
  }
  const cursors = new Array(load.nodes).fill(0)
  drive(
    load,
    clock,
    (n, r) => {
      const t = docs[n]!.getText('t')
      if (r.chance(0.03)) cursors[n] = r.int(0, t.length)
      cursors[n] = Math.min(cursors[n], t.length)
      t.insert(cursors[n]++, 'abcdefghijklmnopqrstuvwxyz '[r.int(0, 26)]!)
    },
    (i, isUp) => {
      if (up[i] === isUp) return
      up[i] = isUp
      epoch[i]!++
      if (isUp) resync(i)
    },
    net.edges.length,
  )
  net.edges.forEach((_, i) => {
    if (!up[i]) {
      up[i] = true
      epoch[i]!++
      resync(i)
    }
  })
  clock.advance(60_000)
  const text = docs[0]!.getText('t').toString()
  if (text.length !== load.chars || docs.some((d) => d.getText('t').toString() !== text)) {
    throw new Error('yjs flood: replicas differ')
  }
  return stats
}

/**
 * 10,000 events of shared history; then the sides {0,1} and {2,3,4} are cut apart
 * while 10,000 more events are made (on both sides); then the heal. Reports the bytes
 * that travel at the heal against the size of the missing events and of the history.
 */
function benchPartition(events: number, topology: Topology): void {
  const rng = new Rng(7)
  const net = new Network({
    factory,
    nodes: 5,
    topology,
    rng,
    agentName: () => agentName(rng),
    link: { batchDelayMs: BATCH_MS, maxBatchDelayMs: MAX_BATCH_MS },
  })
  const type = (n: number) => {
    for (let i = 0; i < n; i++) {
      const doc = net.nodes[i % 5]!.doc
      doc.insert(rng.int(0, doc.length), 'abcdefghijklmnopqrstuvwxyz '[rng.int(0, 26)]!)
      if (i % 25 === 0) net.clock.advance(100)
    }
  }
  type(events)
  if (!net.settle(600_000)) throw new Error('no initial sync')
  net.partition(new Set([0, 1]))
  type(events)
  net.settle(60_000) // each side settles; the whole cannot converge yet
  const sideA = net.nodes[0]!.doc
  const sideB = net.nodes[2]!.doc
  const aLacks = sideB.encodeUpdate(sideA.version()).length
  const bLacks = sideA.encodeUpdate(sideB.version()).length
  const mid = { ...net.stats }
  net.healAll()
  if (!net.settle(600_000)) throw new Error('partition did not heal')
  const healBytes = net.stats.bytes - mid.bytes
  const healMsgs = net.stats.messages - mid.messages
  const full = net.nodes[0]!.doc.encodeUpdate().length
  const crossing = net.edges.filter((e) => e.a < 2 !== e.b < 2).length
  // The floor: every replica must receive once what its side lacks (2 replicas on side A, 3 on B).
  const floor = 2 * aLacks + 3 * bLacks
  console.log(
    `partition heal (${topology}, ${events} shared events, then ${events} made while apart on both sides, ` +
      `${crossing} crossing links): ${healBytes} bytes in ${healMsgs} messages at the heal ` +
      `= ${(healBytes / events).toFixed(2)} B per missed event; the missing events encode to ${aLacks} + ${bLacks} = ` +
      `${aLacks + bLacks} bytes; floor (each replica receives what it lacks once) ${floor} bytes, ` +
      `we send ${(healBytes / floor).toFixed(2)}x the floor; the whole history encodes to ${full} bytes`,
  )
}

function main(): void {
  console.log(
    `load: 5 replicas, ${CHARS} single-character inserts in total, each replica typing ~${RATE} chars/s ` +
      `at its own cursor, link latency 5-80 ms + 0-20 ms jitter, batch window ${BATCH_MS}..${MAX_BATCH_MS} ms`,
  )
  for (const topology of ['ring', 'mesh', 'star', 'chain'] as Topology[]) {
    for (const flaps of [false, true]) {
      const load: Load = { topology, nodes: 5, chars: CHARS, rate: RATE, flaps, seed: 42 }
      const p = benchPolyphony(load)
      const y = benchYjsFlood(load)
      console.log(
        `${topology.padEnd(5)} ${flaps ? 'flaps   ' : 'no flaps'}  polyphony ${(p.bytes / CHARS).toFixed(1).padStart(6)} B/event ` +
          `${(p.messages / CHARS).toFixed(2).padStart(5)} msg/event ${p.received.toFixed(2)} received/event, ` +
          `latency mean ${p.latency.mean.toFixed(0)} p99 ${p.latency.p99.toFixed(0)} ms | yjs flooding ${(y.bytes / CHARS).toFixed(1).padStart(6)} B/event ` +
          `${(y.messages / CHARS).toFixed(2).padStart(5)} msg/event | ${p.ms.toFixed(0)} ms`,
      )
    }
  }
  benchPartition(10_000, 'ring')
  benchPartition(10_000, 'mesh')
}

main()
