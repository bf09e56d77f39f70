/**
 * `TextDoc.applyUpdates`: a batch integrates as each update in turn would (text, version,
 * 'change' ops), in the order `cheapOrder` picks: oldest versions first, causality kept.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { TextDoc } from '../shared/index.ts'
import { cheapOrder } from '../shared/apply-order.ts'
import { decodeUpdate } from '../shared/encoding.ts'
import { Rng } from './support/rng.ts'
import { randomEdit } from './fuzz/edits.ts'

type TextOp = { index: number; insert: string } | { index: number; delete: number }

function applyOps(s: string, ops: readonly TextOp[]): string {
  for (const op of ops) {
    if ('insert' in op) s = s.slice(0, op.index) + op.insert + s.slice(op.index)
    else s = s.slice(0, op.index) + s.slice(op.index + op.delete)
  }
  return s
}

/**
 * A star: a hub relaying `authors` writers, author i hearing the hub `i` rounds late, the hub
 * joining heads with merge events. Returns the hub and what it relayed, in its order.
 */
function star(rng: Rng, authors: number, rounds: number): { hub: TextDoc; relayed: Uint8Array[] } {
  const hub = new TextDoc('hub')
  const relayed: Uint8Array[] = []
  hub.on('update', (u) => void relayed.push(u))
  const docs = Array.from({ length: authors }, (_, i) => new TextDoc(`w${i}`))
  const heard = docs.map(() => 0)
  for (let round = 0; round < rounds; round++) {
    for (const [i, doc] of docs.entries()) {
      // author i has heard the hub up to `round - i` rounds ago
      const upTo = relayed.length
      for (; heard[i]! < upTo && rng.chance(1 / (i + 1)); heard[i]!++)
        doc.applyUpdate(relayed[heard[i]!]!)
      const before = doc.version()
      const edit = randomEdit(rng, doc.toString(), 60)
      if (edit.kind === 'insert') doc.insert(edit.pos, edit.text)
      else doc.delete(edit.pos, edit.len)
      hub.applyUpdate(doc.encodeUpdate(before))
    }
    hub.mergeHeads()
  }
  return { hub, relayed }
}

test('a batch gives the same text, version and change ops as its updates one by one', () => {
  for (let seed = 1; seed <= 20; seed++) {
    const rng = new Rng(seed)
    const { hub, relayed } = star(rng, rng.int(2, 6), rng.int(5, 30))
    const oneByOne = new TextDoc('x')
    for (const u of relayed) oneByOne.applyUpdate(u)
    const batched = new TextDoc('y')
    let mirror = ''
    batched.on('change', (ops) => void (mirror = applyOps(mirror, ops as TextOp[])))
    // batches of random sizes, some shuffled (a parent after its child waits, then applies)
    for (let at = 0; at < relayed.length;) {
      const n = rng.int(1, 12)
      const batch = relayed.slice(at, at + n)
      batched.applyUpdates(rng.chance(0.3) ? rng.shuffle(batch) : batch)
      at += n
      batched.checkInvariants()
      assert.is(mirror, batched.toString(), `seed ${seed}: change ops rebuild the text`)
    }
    assert.is(batched.pendingCount, 0, `seed ${seed}: nothing pending`)
    assert.is(batched.toString(), hub.toString(), `seed ${seed}: text`)
    assert.is(oneByOne.toString(), hub.toString(), `seed ${seed}: text one by one`)
    assert.equal(batched.version(), hub.version(), `seed ${seed}: version`)
  }
})

test('order: updates made on older versions first, each author in causal order', () => {
  const hub = new TextDoc('hub')
  const relayed: Uint8Array[] = []
  hub.on('update', (u) => void relayed.push(u))
  const old = new TextDoc('old')
  const fresh = new TextDoc('fresh')
  old.insert(0, 'o')
  fresh.insert(0, 'f')
  hub.applyUpdate(old.encodeUpdate())
  hub.applyUpdate(fresh.encodeUpdate())
  hub.mergeHeads()
  fresh.applyUpdate(hub.encodeUpdate(fresh.version())) // `fresh` hears the hub; `old` does not
  const start = relayed.length
  for (let i = 0; i < 3; i++) {
    for (const doc of [fresh, old]) {
      const before = doc.version()
      doc.insert(0, doc.agent[0]!)
      hub.applyUpdate(doc.encodeUpdate(before))
    }
  }
  const receiver = new TextDoc('r')
  for (const u of relayed.slice(0, start)) receiver.applyUpdate(u)
  const batch = relayed.slice(start) // fresh, old, fresh, old, fresh, old
  const authors = batch.map((u) => decodeUpdate(u).spans[0]!.agent)
  assert.equal(authors, ['fresh', 'old', 'fresh', 'old', 'fresh', 'old'])
  const cg = (receiver as unknown as { cg: Parameters<typeof cheapOrder>[0] }).cg
  const order = cheapOrder(
    cg,
    batch.map((u) => decodeUpdate(u)),
  )
  assert.equal(
    order.map((i) => authors[i]),
    ['old', 'old', 'old', 'fresh', 'fresh', 'fresh'],
    'the lagging author first, each author in its own order',
  )
  const seqs = order.map((i) => decodeUpdate(batch[i]!).spans[0]!.seq)
  assert.equal(seqs, [1, 2, 3, 1, 2, 3], "each author's edits in causal order")
  // arriving in reverse, an edit before its parent waits for it, then applies
  const reversed = new TextDoc('s')
  for (const u of relayed.slice(0, start)) reversed.applyUpdate(u)
  reversed.applyUpdates([...batch].reverse())
  assert.is(reversed.pendingCount, 0)
  assert.is(reversed.toString(), hub.toString())
  receiver.applyUpdates(batch)
  assert.is(receiver.toString(), hub.toString())
})

test('a malformed update throws; those before it stay, those after are not applied', () => {
  const a = new TextDoc('a')
  const updates: Uint8Array[] = []
  a.on('update', (u) => void updates.push(u))
  a.insert(0, 'one ')
  a.insert(4, 'two ')
  a.insert(8, 'three')
  const b = new TextDoc('b')
  const bad = new Uint8Array([1, 2, 3, 4, 5])
  assert.throws(() => b.applyUpdates([updates[0]!, bad, updates[1]!]))
  assert.is(b.toString(), 'one ')
  b.applyUpdates([updates[2]!, updates[1]!])
  assert.is(b.toString(), 'one two three')
})

test('snapshots, duplicates, an empty batch; a non-array is a TypeError', () => {
  const a = new TextDoc('a')
  a.insert(0, 'hello')
  const snapshot = a.encodeUpdate()
  const before = a.version()
  a.insert(5, ' world')
  const tail = a.encodeUpdate(before)
  const b = new TextDoc('b')
  b.applyUpdates([])
  assert.is(b.toString(), '')
  b.applyUpdates([snapshot, tail, tail, snapshot])
  assert.is(b.toString(), 'hello world')
  assert.equal(b.version(), a.version())
  assert.throws(() => b.applyUpdates(snapshot as unknown as Uint8Array[]), TypeError)
})

test.run()
