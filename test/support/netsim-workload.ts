/**
 * The simulator's workload and checks: seeded scenarios of random edits (markers
 * `<n>` that must survive exactly once and untorn, filler text, deletes of filler
 * only), link flaps, partitions that heal and restarts from save(); then heal,
 * settle, and assert identical text everywhere.
 */
import { Network, sortVV, type NetOptions } from './netsim.ts'
import { Rng } from './rng.ts'

export interface ScenarioOptions extends Omit<NetOptions, 'rng'> {
  seed: number
  /** Edit operations to run. */
  edits: number
  /** Mean virtual ms between actions. Default 15. */
  stepMs?: number
  flaps?: boolean
  partitions?: boolean
  restarts?: boolean
}

export interface ScenarioResult {
  net: Network
  markers: string[]
  events: number
  flaps: number
  partitions: number
  restarts: number
  converged: boolean
}

const FILLER = 'abcdefghijé中'

/** Insert positions not inside a marker `<...>`. */
function boundaries(s: string): number[] {
  const out: number[] = []
  let inside = false
  for (let i = 0; i <= s.length; i++) {
    if (!inside) out.push(i)
    if (s[i] === '<') inside = true
    else if (s[i] === '>') inside = false
  }
  return out
}

/** Runs a seeded scenario: random edits, flaps, partitions, restarts; then heals and settles. */
export function runScenario(o: ScenarioOptions): ScenarioResult {
  const rng = new Rng(o.seed)
  const net = new Network({ ...o, rng })
  const stepMs = o.stepMs ?? 15
  const res: ScenarioResult = {
    net,
    markers: [],
    events: 0,
    flaps: 0,
    partitions: 0,
    restarts: 0,
    converged: false,
  }
  let counter = 0
  for (let k = 0; k < o.edits;) {
    net.clock.advance(rng.int(0, stepMs * 2))
    const r = rng.float()
    if (o.flaps && r < 0.03 && net.edges.length) {
      const i = rng.int(0, net.edges.length - 1)
      net.setEdge(i, false)
      res.flaps++
      net.clock.setTimeout(() => net.setEdge(i, true), rng.int(10, 2000))
      continue
    }
    if (o.partitions && r < 0.045) {
      const group = new Set<number>()
      for (let i = 0; i < net.nodes.length; i++) if (rng.chance(0.5)) group.add(i)
      net.partition(group)
      res.partitions++
      net.clock.setTimeout(() => net.healAll(), rng.int(100, 5000))
      continue
    }
    if (o.restarts && r < 0.06) {
      net.restart(rng.int(0, net.nodes.length - 1))
      res.restarts++
      continue
    }
    k++
    const doc = net.nodes[rng.int(0, net.nodes.length - 1)]!.doc
    const s = doc.toString()
    const kind = rng.float()
    if (kind < 0.55 || s.length === 0) {
      const b = boundaries(s)
      const m = `<${counter++}>`
      doc.insert(rng.pick(b), m)
      res.markers.push(m)
      res.events += m.length
    } else if (kind < 0.8) {
      const b = boundaries(s)
      const text = Array.from({ length: rng.int(1, 4) }, () => rng.pick([...FILLER])).join('')
      doc.insert(rng.pick(b), text)
      res.events += text.length
    } else {
      const i = rng.int(0, s.length - 1)
      const inMarker = boundaries(s).indexOf(i) < 0 || s[i] === '<'
      if (inMarker) continue
      let len = 0
      while (i + len < s.length && len < 5 && s[i + len] !== '<') len++
      if (len === 0) continue
      doc.delete(i, len)
      res.events += len
    }
  }
  net.healAll()
  res.converged = net.settle()
  return res
}

/** Asserts convergence, identical text, markers exactly once and untorn; returns the text. */
export function checkScenario(res: ScenarioResult): string {
  const { net } = res
  if (net.errors.length) throw new Error(`link errors: ${net.errors.slice(0, 3).join('; ')}`)
  if (!res.converged) {
    const vs = net.nodes.map(
      (n) => `${n.name}: ${JSON.stringify(sortVV(n.doc.version()))} pending ${n.doc.pendingCount}`,
    )
    throw new Error(`did not converge (in flight ${net.inFlight}):\n${vs.join('\n')}`)
  }
  const text = net.nodes[0]!.doc.toString()
  for (const n of net.nodes) {
    n.doc.checkInvariants?.()
    if (n.doc.toString() !== text) throw new Error(`${n.name} text differs`)
  }
  const found = text.match(/<[^<>]*>/g) ?? []
  const stripped = text.replace(/<[^<>]*>/g, '')
  if (/[<>]/.test(stripped)) throw new Error('a marker is torn')
  const want = [...res.markers].sort()
  const got = [...found].sort()
  if (JSON.stringify(want) !== JSON.stringify(got)) {
    throw new Error(`markers differ: ${want.length} inserted, ${got.length} found`)
  }
  return text
}

/**
 * `runScenario` then `checkScenario`; a failure names the topology, the seed and the command
 * that replays it (`FUZZ_SEED=<seed> npx tsx <testFile>`).
 */
export function runCheckedScenario(o: ScenarioOptions, testFile: string): ScenarioResult {
  const res = runScenario(o)
  try {
    checkScenario(res)
  } catch (e) {
    throw new Error(
      `${o.topology} seed ${o.seed}: ${(e as Error).message}\n  replay: FUZZ_SEED=${o.seed} npx tsx ${testFile}`,
    )
  }
  return res
}
