/**
 * Convergence fuzz case: many TextDocs over a simulated, misbehaving network.
 *
 * Owns: one case = 2-8 replicas making random inserts and deletes (astral emoji included),
 * with per-link queues that deliver in random order, duplicate, and lose messages; stale
 * syncs from past versions (duplicates), syncs from versions ahead of the receiver (parents
 * missing: events wait in the buffer), forwarding of old logged updates, and partitions.
 * After every step the touched replicas pass `checkInvariants()` and their text equals the
 * text rebuilt from their 'change' ops. At the end, after a full sync: identical text and
 * version vectors everywhere, nothing pending.
 */
import { TextDoc } from '../../shared/index.ts'
import { versionEntries } from '../support/reference.ts'
import { Rng, splitsSurrogate } from '../support/rng.ts'
import { checkRoundTrips } from '../support/round-trip.ts'
import { pickElision, stepsFromEnv, type CaseStats } from './harness.ts'
import {
  applyTextOps,
  applyEditToString,
  describeEdit,
  pickAgents,
  randomBurst,
  randomEdit,
} from './edits.ts'
import { Merge } from '../../shared/walker.ts'

// Every prepare-version move taken from window versions is checked against a graph walk.
Merge.verify = true

interface Replica {
  /** Replaced by `TextDoc.load(doc.save(), agent)` now and then (a restart). */
  doc: TextDoc
  mirror: string
  /** Every update this replica emitted (local and forwarded), in order. */
  readonly history: Uint8Array[]
  /** Version vectors this replica had at earlier steps. */
  readonly past: Record<string, number>[]
  /** Replicas this one cannot reach for now (a partition). */
  cutOff: Set<number>
}

function fail(msg: string): never {
  throw new Error(msg)
}

function check(r: Replica, where: string): void {
  r.doc.checkInvariants()
  const text = r.doc.toString()
  if (r.mirror !== text) {
    fail(
      `${where}: ${r.doc.agent} text ${JSON.stringify(text)} but 'change' ops give ${JSON.stringify(r.mirror)}`,
    )
  }
  if (r.doc.length !== text.length) fail(`${where}: length ${r.doc.length} != ${text.length}`)
  if (r.doc.pendingCount < 0) fail(`${where}: negative pendingCount`)
}

/** Options of {@link convergenceCase}. */
export interface ConvergenceOptions {
  /** Number of steps (default: random 40-250). */
  readonly steps?: number
}

/** One seeded convergence case; throws with a trace of the last steps on failure. */
export function convergenceCase(seed: number, opts: ConvergenceOptions = {}): CaseStats {
  const rng = new Rng(seed)
  const n = rng.int(2, 8)
  const agents = pickAgents(rng, n)
  const listen = (r: Replica) => {
    r.doc.on('update', (u) => {
      r.history.push(u)
      // broadcast to every reachable peer's queue (they may still lose or reorder it)
      const me = replicas.indexOf(r)
      replicas.forEach((_, j) => {
        if (j !== me && !r.cutOff.has(j) && !rng.chance(0.1)) queues[me][j].push(u)
      })
    })
    r.doc.on('change', (ops) => {
      r.mirror = applyTextOps(r.mirror, ops)
    })
  }
  const replicas: Replica[] = agents.map((agent) => {
    const r: Replica = {
      doc: new TextDoc(agent),
      mirror: '',
      history: [],
      past: [],
      cutOff: new Set(),
    }
    listen(r)
    return r
  })
  /** queues[i][j]: messages in flight from i to j. */
  const queues: Uint8Array[][][] = replicas.map(() => replicas.map(() => []))
  // drawn even when given, so that a shorter run replays a prefix of the same run
  const drawn = rng.int(40, 250)
  const steps = opts.steps ?? stepsFromEnv() ?? drawn
  pickElision(rng)
  const trace: string[] = []
  /** Anchors taken along the way; after the full sync every replica must place them alike. */
  const anchors: ({ agent: string; seq: number } | null)[] = []
  const idx = () => rng.int(0, n - 1)
  const other = (i: number) => (i + rng.int(1, n - 1)) % n
  try {
    for (let step = 0; step < steps; step++) {
      const where = `step ${step}`
      const r = rng.float()
      if (r < 0.03) {
        // a restart from saved bytes: events waiting for parents are lost, resent later
        const rep = replicas[idx()]
        trace.push(`${rep.doc.agent}: save and load (${rep.doc.pendingCount} pending)`)
        const copy = TextDoc.load(rep.doc.save(), rep.doc.agent)
        if (copy.toString() !== rep.doc.toString()) fail(`${where}: save/load changed the text`)
        rep.doc = copy
        listen(rep)
        check(rep, where)
        continue
      }
      if (r < 0.08) {
        // a merge event (as a hub makes them): joins the heads, changes no text
        const rep = replicas[idx()]
        const before = rep.doc.toString()
        trace.push(`${rep.doc.agent}.mergeHeads() -> ${rep.doc.mergeHeads()}`)
        if (rep.doc.toString() !== before) fail(`step ${step}: mergeHeads changed the text`)
        check(rep, `step ${step}`)
        continue
      }
      if (r < 0.45) {
        const i = idx()
        const rep = replicas[i]
        const s0 = rep.doc.toString()
        const edits = rng.chance(0.2) ? randomBurst(rng, s0) : [randomEdit(rng, s0, 160)]
        if (rng.chance(0.3)) {
          let p = rng.int(0, s0.length)
          while (splitsSurrogate(s0, p)) p--
          anchors.push(rep.doc.anchorAt(p))
        }
        for (const edit of edits) {
          rep.past.push(rep.doc.version())
          const before = rep.doc.toString()
          trace.push(`${rep.doc.agent}.${describeEdit(edit)}`)
          if (edit.kind === 'insert') rep.doc.insert(edit.pos, edit.text)
          else rep.doc.delete(edit.pos, edit.len)
          const want = applyEditToString(before, edit)
          if (rep.doc.toString() !== want) {
            fail(`${where}: local ${describeEdit(edit)} gave ${JSON.stringify(rep.doc.toString())}`)
          }
          check(rep, where)
        }
      } else if (r < 0.75) {
        // deliver a random in-flight message; sometimes keep it to deliver again later
        const busy: [number, number][] = []
        for (let i = 0; i < n; i++)
          for (let j = 0; j < n; j++) if (queues[i][j].length) busy.push([i, j])
        if (busy.length === 0) continue
        const [i, j] = rng.pick(busy)
        const q = queues[i][j]
        const k = rng.int(0, q.length - 1)
        const msg = q[k]
        if (!rng.chance(0.15)) q.splice(k, 1)
        trace.push(`${agents[i]} -> ${agents[j]}: queued update ${k} of ${q.length}`)
        replicas[j].past.push(replicas[j].doc.version())
        replicas[j].doc.applyUpdate(msg, i)
        check(replicas[j], where)
      } else if (r < 0.85) {
        // stale sync: encodeUpdate from a past version of the receiver (duplicates), or from
        // a version ahead of it (parents missing)
        const i = idx()
        const j = other(i)
        if (replicas[i].cutOff.has(j)) continue
        const to = replicas[j]
        let since: Record<string, number>
        if (rng.chance(0.5) && to.past.length > 0) since = rng.pick(to.past)
        else {
          since = Object.create(null)
          const have = replicas[i].doc.version()
          for (const a of Object.keys(have)) since[a] = rng.int(0, have[a])
        }
        trace.push(`${agents[i]} -> ${agents[j]}: encodeUpdate(${JSON.stringify(since)})`)
        to.past.push(to.doc.version())
        to.doc.applyUpdate(replicas[i].doc.encodeUpdate(since), i)
        check(to, where)
      } else if (r < 0.93) {
        // forward an old logged update of i to j, out of order
        const i = idx()
        const j = other(i)
        if (replicas[i].history.length === 0 || replicas[i].cutOff.has(j)) continue
        const h = rng.int(0, replicas[i].history.length - 1)
        trace.push(`${agents[i]} -> ${agents[j]}: logged update ${h}`)
        replicas[j].doc.applyUpdate(replicas[i].history[h], i)
        check(replicas[j], where)
      } else {
        // partitions come and go
        const i = idx()
        const j = other(i)
        const cut = !replicas[i].cutOff.has(j)
        trace.push(`${cut ? 'cut' : 'heal'} ${agents[i]} <-> ${agents[j]}`)
        for (const [a, b] of [
          [i, j],
          [j, i],
        ]) {
          if (cut) replicas[a].cutOff.add(b)
          else replicas[a].cutOff.delete(b)
        }
      }
    }
    // drain the network in random order, then full sync (gather into 0, spread)
    trace.push('drain and full sync')
    for (const r of replicas) r.cutOff.clear()
    const flights: [number, number, Uint8Array][] = []
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) for (const m of queues[i][j]) flights.push([i, j, m])
    for (const q of queues) for (const l of q) l.length = 0
    for (const [i, j, m] of rng.shuffle(flights)) replicas[j].doc.applyUpdate(m, i)
    for (const q of queues) for (const l of q) l.length = 0
    const hub = replicas[0].doc
    for (const r of replicas.slice(1)) hub.applyUpdate(r.doc.encodeUpdate(hub.version()))
    for (const r of replicas.slice(1)) r.doc.applyUpdate(hub.encodeUpdate(r.doc.version()))
    const text = hub.toString()
    const version = JSON.stringify(versionEntries(hub.version()))
    for (const r of replicas) {
      check(r, 'after full sync')
      if (r.doc.pendingCount !== 0)
        fail(`${r.doc.agent}: ${r.doc.pendingCount} events still pending`)
      if (r.doc.toString() !== text) {
        fail(
          `${r.doc.agent} diverged: ${JSON.stringify(r.doc.toString())} vs ${JSON.stringify(text)}`,
        )
      }
      const v = JSON.stringify(versionEntries(r.doc.version()))
      if (v !== version) fail(`${r.doc.agent} version ${v} != ${version}`)
    }
    // every anchor (of a deleted character too) is placed alike everywhere
    for (const a of anchors) {
      const where = replicas.map((r) => r.doc.positionOf(a))
      if (where.some((p) => p !== where[0]) || where[0] === null) {
        fail(
          `anchor ${JSON.stringify(a)} placed at ${JSON.stringify(where)} on ${JSON.stringify(agents)}`,
        )
      }
    }
    checkRoundTrips(hub, { history: replicas[0].history, rng, label: 'convergence hub' })
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e)
    const last = (process.env.FUZZ_TRACE === '1' ? trace : trace.slice(-25)).join('\n    ')
    throw new Error(`${msg}\n  agents ${JSON.stringify(agents)}; last steps:\n    ${last}`, {
      cause: e,
    })
  }
  return { steps }
}
