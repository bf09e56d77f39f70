/**
 * One helper that asserts every round trip for a document (STYLE.md item 10).
 *
 * Owns: `checkRoundTrips(doc, opts)` and `recordUpdates(doc)`. For a document it checks that
 * save/load, full `encodeUpdate()`, `encodeUpdate(since)` from past versions, and shuffled,
 * duplicated delivery of its update history all reproduce the same text and version, and
 * that `checkInvariants()` passes on every document made along the way.
 * Invariant: never modifies `doc` (only reads it and encodes from it).
 */
import * as assert from 'uvu/assert'
import { TextDoc } from '../../shared/index.ts'
import { Rng } from './rng.ts'
import { versionEntries } from './reference.ts'

/**
 * Starts recording every update `doc` emits (its local edits and what it integrates).
 * Call it on a new, empty document: the returned array then holds the doc's whole history
 * in a causal order, as `checkRoundTrips` expects in `opts.history`.
 */
export function recordUpdates(doc: TextDoc): Uint8Array[] {
  const log: Uint8Array[] = []
  doc.on('update', (update: Uint8Array) => {
    log.push(update)
  })
  return log
}

/** Options of {@link checkRoundTrips}. */
export interface RoundTripOptions {
  /** Every update the doc emitted since it was empty (see {@link recordUpdates}). */
  readonly history?: readonly Uint8Array[]
  /** Randomness for past versions and shuffling; a fixed seed when omitted. */
  readonly rng?: Rng
  /** How many past versions to check `encodeUpdate(since)` from (default 4). */
  readonly pastVersions?: number
  /** Label for assertion messages. */
  readonly label?: string
}

function sameState(actual: TextDoc, expected: TextDoc, what: string): void {
  assert.is(actual.toString(), expected.toString(), `${what}: text`)
  assert.is(actual.length, expected.length, `${what}: length`)
  assert.equal(
    versionEntries(actual.version()),
    versionEntries(expected.version()),
    `${what}: version`,
  )
  assert.is(actual.pendingCount, 0, `${what}: pendingCount`)
  actual.checkInvariants()
}

/**
 * Asserts every round trip of `doc`:
 * - `checkInvariants()` passes on `doc`;
 * - `TextDoc.load(doc.save())` has the same text and version, and saves back to a doc that
 *   loads to the same again;
 * - `doc.encodeUpdate()` applied to a new doc reproduces text and version;
 * - `encodeUpdate(version)` of a doc that already has everything emits no 'update';
 * - for a few past versions (the empty one, and prefixes of `opts.history`): a peer at that
 *   version that applies `doc.encodeUpdate(peer.version())` (and the same from the loaded
 *   copy) reaches doc's text and version;
 * - the history (or the full update) delivered shuffled and with duplicates gives the same
 *   text and version, with nothing left pending.
 */
export function checkRoundTrips(doc: TextDoc, opts: RoundTripOptions = {}): void {
  const label = opts.label ?? 'round trip'
  const rng = opts.rng ?? new Rng(0x5eed)
  doc.checkInvariants()
  assert.is(doc.pendingCount >= 0, true, `${label}: pendingCount is a count`)

  // save / load
  const saved = doc.save()
  assert.instance(saved, Uint8Array, `${label}: save() returns bytes`)
  const loaded = TextDoc.load(saved)
  sameState(loaded, doc, `${label}: load(save())`)
  const reloaded = TextDoc.load(loaded.save())
  sameState(reloaded, doc, `${label}: load(save(load(save())))`)

  // full update into a new doc
  const full = doc.encodeUpdate()
  assert.instance(full, Uint8Array, `${label}: encodeUpdate() returns bytes`)
  const fresh = new TextDoc()
  fresh.applyUpdate(full)
  sameState(fresh, doc, `${label}: encodeUpdate() into a new doc`)

  // nothing new for a peer that has everything
  let fired = 0
  const off = fresh.on('update', () => {
    fired++
  })
  fresh.applyUpdate(doc.encodeUpdate(fresh.version()))
  fresh.applyUpdate(full)
  off()
  assert.is(fired, 0, `${label}: re-applying known events emits no 'update'`)
  sameState(fresh, doc, `${label}: duplicate delivery`)

  // encodeUpdate(since) from past versions
  const history = opts.history ?? []
  const cuts = new Set<number>([0])
  if (history.length > 0) {
    cuts.add(history.length)
    const n = opts.pastVersions ?? 4
    for (let i = 0; i < n; i++) cuts.add(rng.int(0, history.length))
  }
  for (const k of [...cuts].sort((a, b) => a - b)) {
    for (const source of [doc, loaded]) {
      const peer = new TextDoc()
      for (let i = 0; i < k; i++) peer.applyUpdate(history[i])
      assert.is(peer.pendingCount, 0, `${label}: history prefix ${k} is causally closed`)
      const delta = source.encodeUpdate(peer.version())
      peer.applyUpdate(delta)
      const from = source === doc ? 'doc' : 'loaded copy'
      sameState(peer, doc, `${label}: encodeUpdate(since) from ${from}, past version ${k}`)
    }
  }

  // shuffled and duplicated delivery
  const pieces = history.length > 0 ? history.slice() : [full]
  const dups = pieces.filter(() => rng.chance(0.3))
  const shuffled = rng.shuffle([...pieces, ...dups])
  const peer = new TextDoc()
  for (const u of shuffled) {
    peer.applyUpdate(u)
    peer.checkInvariants()
  }
  sameState(peer, doc, `${label}: shuffled and duplicated delivery`)
}
