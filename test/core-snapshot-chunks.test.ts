// A saved history in chunks (TextDoc.save, shared/encoding.ts): each save encodes only the
// events since the last one and keeps the earlier chunks' bytes, so saving a growing
// document costs its new events, not all of it. Snapshots load, merge and save again the
// same whatever their chunks; malformed chunk layouts are refused.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { decodeHistory, decodeSnapshot } from '../shared/encoding.ts'
import { TextDoc, elision, historyChunking } from '../shared/text-doc.ts'
import { DecodeError } from '../shared/varint.ts'
import { Rng } from './support/rng.ts'

// Small documents here: keep their chunks as a large one would.
historyChunking.keepFrom = 0

/** Random edits by `doc` (inserts and deletes anywhere). */
function typeInto(doc: TextDoc, rng: Rng, n: number): void {
  for (let i = 0; i < n; i++) {
    if (doc.length > 10 && rng.u32() % 3 === 0) {
      const at = rng.u32() % (doc.length - 5)
      doc.delete(at, 1 + (rng.u32() % 4))
    } else doc.insert(rng.u32() % (doc.length + 1), `w${i} `)
  }
}

test('a save of a grown document keeps the last save chunks and encodes only the new events', () => {
  const rng = new Rng(3)
  const doc = new TextDoc('a')
  typeInto(doc, rng, 400)
  const first = decodeSnapshot(doc.save()).history
  assert.is(first.length, 1)
  typeInto(doc, rng, 60)
  const second = decodeSnapshot(doc.save()).history
  assert.is(second.length, 2)
  assert.equal(second[0], first[0], 'the first chunk is the same bytes')
  // Nothing new: the same chunks again.
  const again = decodeSnapshot(doc.save()).history
  assert.equal(again.length, 2)
  assert.equal(again[1], second[1])
  const loaded = TextDoc.load(doc.save())
  assert.is(loaded.toString(), doc.toString())
  assert.equal(loaded.version(), doc.version())
  loaded.checkInvariants()
})

test('a chunk smaller than a quarter of the next is merged into it; at most 24 chunks', () => {
  const rng = new Rng(4)
  const doc = new TextDoc('a')
  typeInto(doc, rng, 200)
  doc.save()
  typeInto(doc, rng, 10)
  assert.is(decodeSnapshot(doc.save()).history.length, 2)
  typeInto(doc, rng, 100) // the 10-event chunk is under a quarter of these: merged
  const merged = decodeSnapshot(doc.save()).history
  assert.is(merged.length, 2)
  let most = 0
  for (let i = 0; i < 60; i++) {
    typeInto(doc, rng, 3)
    const h = decodeSnapshot(doc.save()).history
    most = Math.max(most, h.length)
  }
  assert.ok(most <= 24, `${most} chunks`)
  assert.ok(most > 2, 'equal small saves keep their chunks')
  const loaded = TextDoc.load(doc.save())
  assert.is(loaded.toString(), doc.toString())
  loaded.checkInvariants()
})

test('chunked snapshots load, merge concurrent edits, and keep their chunks through a reload', () => {
  const rng = new Rng(5)
  const a = new TextDoc('alice')
  const b = new TextDoc('bob')
  typeInto(a, rng, 150)
  b.applyUpdate(a.encodeUpdate())
  a.save()
  typeInto(a, rng, 80)
  typeInto(b, rng, 80) // concurrent with a's
  a.applyUpdate(b.encodeUpdate(a.version()))
  const saved = a.save()
  assert.is(decodeSnapshot(saved).history.length, 2)
  // A fresh replica joins from the chunked snapshot, then merges a concurrent edit.
  const c = TextDoc.load(saved, 'carol')
  assert.is(c.toString(), a.toString())
  c.insert(3, 'C')
  b.insert(0, 'B')
  c.applyUpdate(b.encodeUpdate(c.version()))
  b.applyUpdate(c.encodeUpdate(b.version()))
  assert.is(c.toString(), b.toString())
  c.checkInvariants()
  // An empty replica applying the snapshot as an update, and one that already has some of it.
  const d = new TextDoc('dave')
  d.applyUpdate(saved)
  assert.is(d.toString(), a.toString())
  const e = new TextDoc('erin')
  e.applyUpdate(b.encodeUpdate())
  e.applyUpdate(saved)
  const f = new TextDoc('fay')
  f.applyUpdate(b.encodeUpdate())
  f.applyUpdate(a.encodeUpdate())
  assert.is(e.toString(), f.toString())
  // A reloaded document's next save keeps the loaded chunks' bytes.
  const r = TextDoc.load(saved, 'alice2')
  r.insert(0, 'more ')
  const next = decodeSnapshot(r.save()).history
  const before = decodeSnapshot(saved).history
  assert.equal(next[0], before[0])
  assert.equal(next[1], before[1])
  assert.is(TextDoc.load(r.save()).toString(), r.toString())
})

test('the text of inserts deleted within a new chunk is elided; older chunks keep theirs', () => {
  const keep = { ...elision }
  elision.from = 0
  elision.minStretch = 1
  try {
    const doc = new TextDoc('a')
    doc.insert(0, 'head OLDSECRET tail')
    doc.save()
    doc.delete(5, 10) // OLDSECRET: its insert is in the first chunk
    doc.insert(0, 'NEWSECRET ')
    doc.delete(0, 10) // inserted and deleted within the new chunk
    const history = decodeSnapshot(doc.save()).history
    assert.is(history.length, 2)
    const texts = decodeHistory(history)
      .ops.map((op) => op.content)
      .join('')
    assert.ok(texts.includes('OLDSECRET'), 'the first chunk was not encoded again')
    assert.not.ok(texts.includes('NEWSECRET'), 'elided in the new chunk')
    assert.is(TextDoc.load(doc.save()).toString(), 'head tail')
  } finally {
    Object.assign(elision, keep)
  }
})

test('a flipped byte anywhere in a chunked snapshot fails loudly, never loads another document', () => {
  const doc = new TextDoc('a')
  doc.insert(0, 'x'.repeat(50))
  doc.save()
  doc.insert(50, 'y')
  const good = doc.save()
  assert.is(decodeSnapshot(good).history.length, 2)
  for (let i = 0; i < good.length; i++) {
    const bad = good.slice()
    bad[i] ^= 0x41
    let detected: boolean
    try {
      const d = TextDoc.load(bad)
      d.insert(0, 'z')
      d.applyUpdate(new TextDoc('q').encodeUpdate()) // loads the history
      detected = d.toString() !== 'z' + doc.toString()
    } catch (e) {
      detected = e instanceof DecodeError
    }
    assert.ok(detected, `byte ${i} flipped`)
  }
})

test('a small document keeps no chunks: each save encodes it whole, in one chunk', () => {
  const rng = new Rng(7)
  const doc = new TextDoc('a')
  historyChunking.keepFrom = 1_000_000
  try {
    typeInto(doc, rng, 100)
    doc.save()
    typeInto(doc, rng, 100)
    assert.is(decodeSnapshot(doc.save()).history.length, 1)
    const loaded = TextDoc.load(doc.save())
    loaded.insert(0, 'x')
    assert.is(decodeSnapshot(loaded.save()).history.length, 1)
  } finally {
    historyChunking.keepFrom = 0
  }
})

test('saveAsync saves the document as it was when called, in the same bytes as save', async () => {
  const rng = new Rng(6)
  const doc = new TextDoc('a')
  typeInto(doc, rng, 300)
  const now = doc.toString()
  const sync = doc.save()
  const pending = doc.saveAsync()
  doc.insert(0, 'later ')
  const saved = await pending
  assert.equal(saved, sync, 'the same bytes')
  assert.is(TextDoc.load(saved).toString(), now)
})

test.run()
