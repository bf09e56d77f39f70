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
import { addEvents, createGraph } from '../shared/causal-graph.ts'
import { byNewestParent } from '../shared/incoming.ts'
import type { IncomingSpan } from '../shared/pending.ts'
import { Rng } from './support/rng.ts'

Merge.verify = true

/**
 * Runs the star, the hub making a merge event after a relay with chance `merges` (at edit
 * `t`, when a function); `watch` sees the clients after every edit. With `prefix`, the first
 * client has typed that many characters, and everyone has them, before the star starts.
 * Returns the mean number of parents of the clients' updates.
 */
function star(
  seed: number,
  clients: number,
  edits: number,
  lag: number | ((t: number) => number),
  merges: number | ((t: number) => number) = 0,
  watch?: (t: number, docs: TextDoc[]) => void,
  prefix = 0,
): number {
  const rng = new Rng(seed)
  const hub = new TextDoc('hub')
  const docs = Array.from(
    { length: clients },
    (_, i) => new TextDoc(`c${String(i).padStart(3, '0')}`),
  )
  if (prefix > 0) {
    docs[0]!.insert(0, 'p'.repeat(prefix))
    const u = docs[0]!.encodeUpdate({})
    hub.applyUpdate(u)
    for (const doc of docs.slice(1)) doc.applyUpdate(u)
  }
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

test('window versions keep counts past 16 bits as the graph outgrows 65,535 events', () => {
  // Rows hold 16-bit counts while the graph is small: here the first client's count crosses
  // 65,535 during the star, and every move from window versions is checked against the graph.
  let crossed = false
  const watch = (_: number, docs: TextDoc[]) => (crossed ||= docs[1]!.version()['c000']! > 0xffff)
  star(9, 12, 300, 20, 0.3, watch, 65_520)
  assert.ok(crossed, 'the first client typed past 65,535 events')
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
  toggled: number
  siblings: number
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

test("an update's spans are ordered by their newest parent, each after its parents and its agent's last", () => {
  const cg = createGraph()
  addEvents(cg, 'h', 0, 10, []) // h0-9: LVs 0-9
  const span = (agent: string, seq: number, len: number, parents: [string, number][]) =>
    ({ agent, seq, len, parents, ops: [] }) as IncomingSpan
  // In this order they would take LVs 10, 11, 12, 13-14, 15, 16, 17.
  const spans = [
    span('A', 0, 1, [['h', 9]]), // newest parent: 9
    span('B', 0, 1, [['h', 2]]), // 2
    span('A', 1, 1, [['A', 0]]), // 10: after A0
    span('C', 0, 2, [['B', 0]]), // 11: after B0, its parent in the update
    span('D', 0, 1, [['h', 2]]), // 2
    span('E', 0, 1, []), // none
    span('F', 0, 1, [['Z', 5]]), // parent unknown: it waits, wherever it goes
  ]
  const order = byNewestParent(cg, spans).map((s) => `${s.agent}${s.seq}`)
  assert.equal(order, ['E0', 'F0', 'B0', 'D0', 'A0', 'A1', 'C0'])
  // Already in order, or too short to gain: the same array back.
  const inOrder = [spans[5]!, spans[1]!, spans[0]!]
  assert.is(byNewestParent(cg, inOrder), inOrder)
  const two = spans.slice(0, 2).reverse()
  assert.is(byNewestParent(cg, two), two)
})

test("a hub's batch interleaving lagging and fresh clients is walked grouped by version", () => {
  // The server relays, in one update, edits made on versions a second apart; in the order they
  // reached it, each move of the receiver's walk would retreat and advance that second.
  Merge.verify = false
  try {
    const rng = new Rng(21)
    const hub = new TextDoc('hub')
    hub.insert(0, 'start')
    const clients = Array.from(
      { length: 20 },
      (_, i) => new TextDoc(`c${String(i).padStart(2, '0')}`),
    )
    for (const c of clients) c.applyUpdate(hub.encodeUpdate())
    // Two receivers in the same state, with an edit of their own the hub has not seen: one gets
    // the hub's events in three batches, the other one by one.
    const [batched, oneByOne] = [new TextDoc('r'), new TextDoc('r')]
    for (const r of [batched, oneByOne]) {
      r.applyUpdate(hub.encodeUpdate())
      r.insert(2, 'mine')
    }
    let since = hub.version()
    let toggledBatched = 0
    /** The batched receiver gets what the hub has, as one update. */
    const receive = () => {
      const m = keptMerge(batched)
      const before = m?.toggled ?? 0
      // Its walk's moves are checked against the graph.
      Merge.verify = true
      batched.applyUpdate(hub.encodeUpdate(since))
      Merge.verify = false
      since = hub.version()
      const after = keptMerge(batched)
      toggledBatched += (after?.toggled ?? 0) - (after === m ? before : 0)
    }
    // What the hub relayed, in its order; each client has applied a prefix of it.
    const relayed: [from: number, update: Uint8Array][] = []
    const applied = new Array<number>(clients.length).fill(0)
    for (let t = 0; t < 300; t++) {
      // Even clients are up to date when they type; odd ones, typing less often, are 30 relays
      // behind (their last edit is merged in the version they type on, as in a busy star).
      const i = 2 * rng.int(0, clients.length / 2 - 1) + (rng.chance(0.2) ? 1 : 0)
      const c = clients[i]!
      const target = Math.max(applied[i]!, relayed.length - (i % 2 === 0 ? 0 : 30))
      for (; applied[i]! < target; applied[i]!++) {
        const [from, u] = relayed[applied[i]!]!
        if (from !== i) c.applyUpdate(u)
      }
      const before = c.version()
      c.insert(rng.int(0, c.length), 'xyz'[rng.int(0, 2)]!)
      const update = c.encodeUpdate(before)
      hub.applyUpdate(update)
      relayed.push([i, update])
      // The hub joins its heads after every few relays, as the server does after each flush.
      if (t % 10 === 9) {
        const before = hub.version()
        if (hub.mergeHeads()) relayed.push([-1, hub.encodeUpdate(before)])
      }
      if (t % 100 === 99) receive()
    }
    let toggledOneByOne = 0
    for (const [, u] of relayed) {
      const m = keptMerge(oneByOne)
      const before = m?.toggled ?? 0
      oneByOne.applyUpdate(u)
      const after = keptMerge(oneByOne)
      toggledOneByOne += (after?.toggled ?? 0) - (after === m ? before : 0)
    }
    assert.is(batched.toString(), oneByOne.toString())
    batched.applyUpdate(oneByOne.encodeUpdate(batched.version())) // nothing new
    hub.applyUpdate(batched.encodeUpdate(hub.version()))
    assert.is(hub.toString(), batched.toString())
    batched.checkInvariants()
    assert.ok(
      toggledBatched * 2 < toggledOneByOne,
      `events retreated and advanced: ${toggledBatched} in one batch, ${toggledOneByOne} one by one`,
    )
  } finally {
    Merge.verify = true
  }
})

test('edits made on one version come in one batch: each move retreats the sibling before', () => {
  // Clients type on the same version of the hub; a receiver with an edit of its own gets them
  // in one update. After the first, each run's move retreats the run before it alone: checked
  // against a graph walk (Merge.verify) with 12 clients; with 5, unchecked and without window
  // versions (under 8 agents), the texts must still agree.
  for (const [clients, verify] of [
    [12, true],
    [5, false],
  ] as const) {
    const hub = new TextDoc('hub')
    hub.insert(0, 'start')
    const docs = Array.from({ length: clients }, (_, i) => new TextDoc(`c${i}`))
    const receiver = new TextDoc('r')
    for (const d of [...docs, receiver]) d.applyUpdate(hub.encodeUpdate())
    receiver.insert(5, '!')
    const since = hub.version()
    docs.forEach((d, i) => {
      const before = d.version()
      d.insert(i % 6, `${i}`.repeat(3))
      hub.applyUpdate(d.encodeUpdate(before))
    })
    Merge.verify = verify
    try {
      receiver.applyUpdate(hub.encodeUpdate(since))
    } finally {
      Merge.verify = true
    }
    hub.applyUpdate(receiver.encodeUpdate(hub.version()))
    assert.is(receiver.toString(), hub.toString())
    receiver.checkInvariants()
    const m = keptMerge(receiver)!
    assert.is(m.versions !== null, verify, `window versions with ${clients} clients`)
    // Every client's run is a sibling of the one before (the first, of the receiver's own).
    assert.is(m.siblings, clients, `sibling moves with ${clients} clients`)
  }
})

test('branches made apart keep their order in one update: a heal walks each branch once', () => {
  // Ordering by anything that ranks branches alike (the size of each span's version, say)
  // would interleave them, and every move would retreat and advance a whole branch.
  const rng = new Rng(3)
  const base = new TextDoc('base')
  base.insert(0, 'hello world')
  const groups = Array.from({ length: 4 }, (_, g) =>
    Array.from({ length: 2 }, (_, i) => {
      const d = new TextDoc(`g${g}a${i}`)
      d.applyUpdate(base.encodeUpdate())
      return d
    }),
  )
  const syncGroup = (group: TextDoc[]) => {
    for (const x of group)
      for (const y of group) if (x !== y) y.applyUpdate(x.encodeUpdate(y.version()))
  }
  // Each group edits on its own, its members syncing every few rounds.
  for (let t = 0; t < 300; t++) {
    for (const group of groups) {
      const d = group[rng.int(0, group.length - 1)]!
      d.insert(rng.int(0, d.length), 'ab'[rng.int(0, 1)]!)
      if (t % 5 === 0) syncGroup(group)
    }
  }
  groups.forEach(syncGroup)
  // A hub gathers the groups one after another; a member of the first gets the rest at once.
  const hub = new TextDoc('hub')
  for (const group of groups) hub.applyUpdate(group[0]!.encodeUpdate(hub.version()))
  const r = groups[0]![0]!
  const before = r.version()
  r.applyUpdate(hub.encodeUpdate(before))
  assert.is(r.toString(), hub.toString())
  let received = 0
  for (const [agent, n] of Object.entries(r.version())) received += n - (before[agent] ?? 0)
  const toggled = keptMerge(r)!.toggled
  assert.ok(
    toggled < 4 * received,
    `events retreated and advanced: ${toggled}, received ${received}`,
  )
})

test('60 clients, long lag: agents appear mid-merge and old parents fall back to a walk', () => {
  star(99, 60, 500, 120)
})

test.run()
