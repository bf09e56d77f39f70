/**
 * Differential fuzz case: TextDoc against the naive reference (test/support/reference.ts).
 *
 * Owns: one case = 2-5 replicas, each a TextDoc and its reference twin with the same agent.
 * Every local edit is made on both; every delivery hands the twins the same set of events
 * (a random subset of a replica's update log, shuffled and duplicated; a sync from the
 * receiver's version; or a suffix from a random version, whose parents may be missing).
 * After every step each TextDoc must equal its twin: text, version vector, pendingCount,
 * and the text rebuilt from its 'change' ops. At the end a full sync must make all equal.
 */
import { TextDoc } from '../../shared/index.ts'
import { RefDoc, versionEntries, type RefEvent } from '../support/reference.ts'
import { Rng, splitsSurrogate } from '../support/rng.ts'
import { checkRoundTrips } from '../support/round-trip.ts'
import { insertKeys } from '../support/elided.ts'
import { pickElision, stepsFromEnv, type CaseStats } from './harness.ts'
import { applyTextOps, describeEdit, pickAgents, randomBurst, randomEdit } from './edits.ts'
import { Merge } from '../../shared/walker.ts'

// Every prepare-version move taken from window versions is checked against a graph walk.
Merge.verify = true

/** An update as both twins see it: the TextDoc's bytes and the reference's events. */
interface Msg {
  readonly bytes: readonly Uint8Array[]
  readonly events: readonly RefEvent[]
}

interface Twin {
  /** Replaced by `TextDoc.load(doc.save(), agent)` now and then. */
  doc: TextDoc
  readonly ref: RefDoc
  /** The text rebuilt from 'change' ops. */
  mirror: string
  /** Every update the pair emitted, local or forwarded, in order. */
  readonly log: Msg[]
  /** The TextDoc's emitted updates, flattened (its whole history, for round trips). */
  readonly history: Uint8Array[]
  /** Updates emitted since the last `take()`. */
  fresh: Uint8Array[]
}

function makeTwin(agent: string): Twin {
  const twin: Twin = {
    doc: new TextDoc(agent),
    ref: new RefDoc(agent),
    mirror: '',
    log: [],
    history: [],
    fresh: [],
  }
  listen(twin)
  return twin
}

function listen(twin: Twin): void {
  twin.doc.on('update', (u) => {
    twin.fresh.push(u)
    twin.history.push(u)
  })
  twin.doc.on('change', (ops) => {
    twin.mirror = applyTextOps(twin.mirror, ops)
  })
}

/** Swaps the twin's TextDoc for a save/load copy (same agent): history loaded lazily. */
function reload(twin: Twin): void {
  const copy = TextDoc.load(twin.doc.save(), twin.doc.agent)
  if (copy.toString() !== twin.doc.toString()) fail(`${twin.doc.agent}: save/load changed the text`)
  twin.doc = copy
  listen(twin)
}

function take(t: Twin): Uint8Array[] {
  const out = t.fresh
  t.fresh = []
  return out
}

function fail(msg: string): never {
  throw new Error(msg)
}

/** Asserts a TextDoc equals its reference twin. */
function compare(t: Twin, where: string, rng?: Rng): void {
  const text = t.doc.toString()
  const want = t.ref.toString()
  if (text !== want) {
    fail(
      `${where}: ${t.doc.agent} text ${JSON.stringify(text)} != reference ${JSON.stringify(want)}`,
    )
  }
  if (t.doc.length !== want.length) fail(`${where}: length ${t.doc.length} != ${want.length}`)
  const v = JSON.stringify(versionEntries(t.doc.version()))
  const rv = JSON.stringify(versionEntries(t.ref.version()))
  if (v !== rv) fail(`${where}: ${t.doc.agent} version ${v} != reference ${rv}`)
  if (t.doc.pendingCount !== t.ref.pendingCount) {
    fail(`${where}: pendingCount ${t.doc.pendingCount} != reference ${t.ref.pendingCount}`)
  }
  if (t.mirror !== text)
    fail(`${where}: text rebuilt from 'change' ops ${JSON.stringify(t.mirror)}`)
  t.doc.checkInvariants()
  if (rng !== undefined) compareAnchors(t, where, rng)
}

/** A few anchors: anchorAt(pos) and positionOf(id) (deleted characters too) agree. */
function compareAnchors(t: Twin, where: string, rng: Rng): void {
  const text = t.ref.toString()
  for (let k = 0; k < 2; k++) {
    let pos = rng.int(0, text.length)
    while (splitsSurrogate(text, pos)) pos--
    const got = t.doc.anchorAt(pos)
    const want = t.ref.anchorAt(pos)
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      fail(
        `${where}: ${t.doc.agent}.anchorAt(${pos}) = ${JSON.stringify(got)}, reference ${JSON.stringify(want)}`,
      )
    }
  }
  const ids = t.ref.itemIds()
  const probes = ids.length === 0 ? [] : [rng.pick(ids), rng.pick(ids)]
  probes.push({ agent: 'nobody', seq: 0 })
  for (const id of probes) {
    const got = t.doc.positionOf(id)
    const want = t.ref.positionOf(id)
    if (got !== want) {
      const state = t.ref.isDeleted(id) ? 'deleted' : 'visible or unknown'
      fail(
        `${where}: ${t.doc.agent}.positionOf(${JSON.stringify(id)}) (${state}) = ${got}, reference ${want}`,
      )
    }
  }
}

/** Delivers one message to `to`; logs what it integrated as a new message. */
function deliver(to: Twin, bytes: readonly Uint8Array[], events: readonly RefEvent[]): void {
  // The inserts the bytes carry only with their text elided (the reference holds them alike).
  const elided = new Set<string>()
  const withText = new Set<string>()
  for (const b of bytes) {
    to.doc.applyUpdate(b, 'fuzz')
    const keys = insertKeys(b)
    for (const key of keys.elided) elided.add(key)
    for (const key of keys.withText) withText.add(key)
  }
  for (const key of withText) elided.delete(key)
  const newEvents = to.ref.applyEvents(events, elided)
  const emitted = take(to)
  if (newEvents.length > 0 && emitted.length === 0) {
    fail(`${to.doc.agent} integrated ${newEvents.length} events but emitted no 'update'`)
  }
  if (newEvents.length === 0 && emitted.length > 0) {
    fail(`${to.doc.agent} emitted 'update' though the reference integrated nothing`)
  }
  if (newEvents.length > 0) to.log.push({ bytes: emitted, events: newEvents })
}

/** Options of {@link differentialCase}. */
export interface DifferentialOptions {
  /** Number of steps (default: random 30-150). */
  readonly steps?: number
}

/** One seeded differential case; throws with a trace of the last steps on mismatch. */
export function differentialCase(seed: number, opts: DifferentialOptions = {}): CaseStats {
  const rng = new Rng(seed)
  const agents = pickAgents(rng, rng.int(2, 5))
  const twins = agents.map(makeTwin)
  // drawn even when given, so that a shorter run replays a prefix of the same run
  const drawn = rng.int(30, 150)
  const steps = opts.steps ?? stepsFromEnv() ?? drawn
  pickElision(rng)
  const trace: string[] = []
  try {
    for (let step = 0; step < steps; step++) {
      const r = rng.float()
      if (r < 0.04) {
        // a replica restarts from its saved bytes (pending events are not part of save())
        const t = rng.pick(twins)
        if (t.doc.pendingCount > 0) continue
        trace.push(`${t.doc.agent}: save and load`)
        reload(t)
        compare(t, `step ${step}`, rng)
        continue
      }
      if (r < 0.1) {
        // a merge event (as a hub makes them): joins the heads, changes no text
        const t = rng.pick(twins)
        const made = t.doc.mergeHeads()
        const events = t.ref.merge()
        if (made !== events.length > 0) fail(`mergeHeads made ${made}, the reference ${events}`)
        trace.push(`${t.doc.agent}.mergeHeads() -> ${made}`)
        const emitted = take(t)
        if (made !== emitted.length > 0) fail(`mergeHeads ${made} emitted ${emitted.length}`)
        if (made) t.log.push({ bytes: emitted, events })
        compare(t, `step ${step}`, rng)
        continue
      }
      if (r < 0.55) {
        const t = rng.pick(twins)
        const s0 = t.ref.toString()
        const edits = rng.chance(0.2) ? randomBurst(rng, s0) : [randomEdit(rng, s0, 120)]
        for (const edit of edits) {
          trace.push(`${t.doc.agent}.${describeEdit(edit)}`)
          let events: RefEvent[]
          if (edit.kind === 'insert') {
            t.doc.insert(edit.pos, edit.text)
            events = t.ref.insert(edit.pos, edit.text)
          } else {
            t.doc.delete(edit.pos, edit.len)
            events = t.ref.delete(edit.pos, edit.len)
          }
          const emitted = take(t)
          if (emitted.length === 0) fail(`local ${describeEdit(edit)} emitted no 'update'`)
          t.log.push({ bytes: emitted, events })
          compare(t, `step ${step}`, rng)
        }
        continue
      }
      const from = rng.pick(twins)
      const to = rng.pick(twins.filter((x) => x !== from))
      if (r < 0.8) {
        // a random subset of from's log, shuffled, some twice
        const chosen = from.log.filter(() => rng.chance(0.5))
        const msgs = rng.shuffle([...chosen, ...chosen.filter(() => rng.chance(0.2))])
        trace.push(`${from.doc.agent} -> ${to.doc.agent}: ${msgs.length} logged updates`)
        for (const m of msgs) deliver(to, m.bytes, m.events)
      } else if (r < 0.9) {
        trace.push(`${from.doc.agent} -> ${to.doc.agent}: sync`)
        const since = to.doc.version()
        deliver(to, [from.doc.encodeUpdate(since)], from.ref.events(to.ref.version()))
      } else {
        // a suffix from a random version: duplicates and missing parents
        const have = from.ref.version()
        const since: Record<string, number> = Object.create(null)
        for (const a of Object.keys(have)) if (rng.chance(0.7)) since[a] = rng.int(0, have[a])
        trace.push(`${from.doc.agent} -> ${to.doc.agent}: since ${JSON.stringify(since)}`)
        deliver(to, [from.doc.encodeUpdate(since)], from.ref.events(since))
      }
      compare(to, `step ${step}`, rng)
    }
    // full sync: gather into the first, then spread
    trace.push('full sync')
    const hub = twins[0]
    for (const t of twins.slice(1)) {
      deliver(hub, [t.doc.encodeUpdate(hub.doc.version())], t.ref.events(hub.ref.version()))
    }
    for (const t of twins.slice(1)) {
      deliver(t, [hub.doc.encodeUpdate(t.doc.version())], hub.ref.events(t.ref.version()))
    }
    const text = hub.ref.toString()
    for (const t of twins) {
      compare(t, 'after full sync')
      if (t.doc.pendingCount !== 0) fail(`${t.doc.agent}: ${t.doc.pendingCount} still pending`)
      if (t.doc.toString() !== text) fail(`${t.doc.agent} differs after full sync`)
    }
    checkRoundTrips(hub.doc, { history: hub.history, rng, label: 'differential hub' })
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e)
    const last = (process.env.FUZZ_TRACE === '1' ? trace : trace.slice(-25)).join('\n    ')
    throw new Error(`${msg}\n  agents ${JSON.stringify(agents)}; last steps:\n    ${last}`, {
      cause: e,
    })
  }
  return { steps }
}
