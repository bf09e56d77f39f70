/**
 * Window versions (shared/window-versions.ts) under wide concurrency: many clients of a hub,
 * each typing on a lagging view, so the walker's kept merge moves its prepare version between
 * frontiers of many heads. Every move taken from window versions is checked against a graph
 * walk (Merge.verify), and every replica must end with the hub's text.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { TextDoc } from '../shared/index.ts'
import { KIND_UPDATE, decodeUpdate, messageKind } from '../shared/encoding.ts'
import { Merge } from '../shared/walker.ts'
import { Rng } from './support/rng.ts'

Merge.verify = true

/**
 * Runs the star, the hub making a merge event after a relay with chance `merges` (at edit
 * `t`, when a function); `watch` sees the clients after every edit. Returns the mean number
 * of parents of the clients' updates.
 */
function star(
  seed: number,
  clients: number,
  edits: number,
  lag: number | ((t: number) => number),
  merges: number | ((t: number) => number) = 0,
  watch?: (t: number, docs: TextDoc[]) => void,
): number {
  const rng = new Rng(seed)
  const hub = new TextDoc('hub')
  const docs = Array.from(
    { length: clients },
    (_, i) => new TextDoc(`c${String(i).padStart(3, '0')}`),
  )
  // Updates the hub relays, in its order; each client has applied a prefix of them.
  const relayed: [from: number, update: Uint8Array][] = []
  const applied = new Array<number>(clients).fill(0)
  let parents = 0
  for (let t = 0; t < edits; t++) {
    const i = rng.int(0, clients - 1)
    const doc = docs[i]!
    const before = doc.version()
    const pos = rng.int(0, doc.length)
    if (doc.length > 0 && rng.chance(0.2)) doc.delete(Math.min(pos, doc.length - 1), 1)
    else doc.insert(pos, 'abcdefghij'[rng.int(0, 9)]!.repeat(rng.int(1, 3)))
    const update = doc.encodeUpdate(before)
    if (messageKind(update) === KIND_UPDATE)
      parents += decodeUpdate(update).spans[0]!.parents.length
    hub.applyUpdate(update)
    relayed.push([i, update])
    // A hub that joins its heads after a few relays (as the server does after each flush).
    if (rng.chance(typeof merges === 'function' ? merges(t) : merges)) {
      const before = hub.version()
      if (hub.mergeHeads()) relayed.push([-1, hub.encodeUpdate(before)])
    }
    // Each client catches up to a random point at most `lag` updates behind.
    for (let j = 0; j < clients; j++) {
      const behind = rng.int(0, typeof lag === 'function' ? lag(t) : lag)
      const target = Math.max(applied[j]!, relayed.length - behind)
      for (; applied[j]! < target; applied[j]!++) {
        const [from, u] = relayed[applied[j]!]!
        if (from !== j) docs[j]!.applyUpdate(u)
      }
    }
    watch?.(t, docs)
  }
  for (let j = 0; j < clients; j++) {
    for (; applied[j]! < relayed.length; applied[j]!++) {
      const [from, u] = relayed[applied[j]!]!
      if (from !== j) docs[j]!.applyUpdate(u)
    }
    assert.is(docs[j]!.toString(), hub.toString(), `client ${j} (seed ${seed})`)
    if (j < 3) docs[j]!.checkInvariants()
  }
  return parents / edits
}

test('20 lagging clients of a hub converge; window versions agree with the graph', () => {
  for (let seed = 1; seed <= 3; seed++) star(seed, 20, 400, 25)
})

test('merges kept from the first few agents restart with window versions as more agents type', () => {
  // Without verification a merge gets window versions only from 8 agents on: the first merges
  // of each client are kept without them, and must restart (walker.ts, Merge.run).
  Merge.verify = false
  try {
    for (let seed = 4; seed <= 5; seed++) star(seed, 20, 400, 25)
  } finally {
    Merge.verify = true
  }
})

test('with the hub joining its heads by merge events, frontiers stay narrow and all converge', () => {
  for (let seed = 6; seed <= 7; seed++) star(seed, 20, 400, 25, 0.5)
  const joined = star(98, 60, 500, 120, 0.5)
  const wide = star(98, 60, 500, 120)
  assert.ok(joined < wide / 2, `mean parents ${joined} with merge events, ${wide} without`)
})

/** What the tests read of a document's kept merge (walker.ts `Merge`, window-versions.ts). */
interface KeptMerge {
  versions: { capacity: number; agents: string[] } | null
  moves: number
  graphWalks: number
}
const keptMerge = (doc: TextDoc) => (doc as unknown as { merge: KeptMerge | null }).merge

/** Whether a document's kept merge keeps window versions (null: no merge kept). */
function keepsVersions(doc: TextDoc): boolean | null {
  const merge = keptMerge(doc)
  return merge === null ? null : merge.versions !== null
}

/** The rows a document's kept merge has room for (0: none kept, or no window versions). */
const ringRows = (doc: TextDoc) => keptMerge(doc)?.versions?.capacity ?? 0

test('kept merges keep window versions from 8 agents on, and their rows reach back as far as the walks', () => {
  // Without verification (walker.ts, versionsPay): whatever the parents an edit names (here the
  // hub joins its heads after every relay: one or two); and a client that lags far grows its
  // ring of rows past the first 64 (window-versions.ts, FIRST_ROWS), one that keeps up does not;
  // and once its ring has grown, its moves come from the vectors, not from graph walks (a merge
  // event whose parent's row was overwritten gets its version from one walk: else no later merge
  // event would have a row, each naming the one before).
  Merge.verify = false
  const kept: (boolean | null)[] = []
  let farRows = 0
  let nearRows = 0
  const walked = new Map<KeptMerge, [moves: number, walks: number]>()
  try {
    star(11, 30, 1200, 200, 1, (t, docs) => {
      if (t >= 900) kept.push(...docs.map(keepsVersions))
      if (t === 600)
        for (const m of docs.map(keptMerge)) if (m) walked.set(m, [m.moves, m.graphWalks])
      if (t === 1199) farRows = Math.max(...docs.map(ringRows))
    })
    star(12, 30, 1200, 2, 1, (t, docs) => {
      if (t === 1199) nearRows = Math.max(...docs.map(ringRows))
    })
  } finally {
    Merge.verify = true
  }
  const share = kept.filter((v) => v === true).length / kept.filter((v) => v !== null).length
  assert.is(share, 1, `kept merges with window versions: ${share}`)
  assert.ok(farRows > 64, `rows of a far-lagging client's ring: ${farRows}`)
  assert.ok(nearRows <= 64, `rows of a client that keeps up: ${nearRows}`)
  let moves = 0
  let walks = 0
  for (const [m, [moves0, walks0]] of walked) {
    moves += m.moves - moves0
    walks += m.graphWalks - walks0
  }
  assert.ok(moves > 1000, `moves in the second half: ${moves}`)
  assert.ok(walks < moves / 100, `graph walks in the second half: ${walks} of ${moves} moves`)
})

test("a merge's vectors hold the agents writing since its base, not every agent the document had", () => {
  Merge.verify = false
  try {
    const a = new TextDoc('a')
    // Forty earlier writers, one after another.
    for (let i = 0; i < 40; i++) {
      const w = new TextDoc(`w${i}`)
      w.applyUpdate(a.encodeUpdate())
      w.insert(w.length, 'w')
      a.applyUpdate(w.encodeUpdate(a.version()))
    }
    const b = new TextDoc('b')
    b.applyUpdate(a.encodeUpdate())
    // Then two of them type at once, each update crossing one of the other's.
    for (let t = 0; t < 50; t++) {
      const [va, vb] = [a.version(), b.version()]
      a.insert(t % (a.length + 1), 'a')
      b.insert(b.length, 'b')
      const [ua, ub] = [a.encodeUpdate(va), b.encodeUpdate(vb)]
      a.applyUpdate(ub)
      b.applyUpdate(ua)
    }
    assert.is(a.toString(), b.toString())
    const merge = keptMerge(a)
    assert.ok(merge?.versions, 'a kept merge with window versions (42 agents)')
    assert.ok(merge.versions.agents.length <= 3, `agents indexed: ${merge.versions.agents}`)
  } finally {
    Merge.verify = true
  }
})

test('60 clients, long lag: agents appear mid-merge and old parents fall back to a walk', () => {
  star(99, 60, 500, 120)
})

test.run()
